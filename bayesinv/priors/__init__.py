"""Priors with a denoiser/score: analytic (exact) and diffusion (learned)."""

from bayesinv.priors.base import ScorePrior
from bayesinv.priors.schedules import Schedule, make_schedule, ve_geometric, vp_cosine, vp_linear

__all__ = ["ScorePrior", "Schedule", "make_schedule", "ve_geometric", "vp_cosine", "vp_linear"]
