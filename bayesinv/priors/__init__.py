"""Priors with a denoiser/score: analytic (exact) and diffusion (learned)."""

from bayesinv.priors.base import ScorePrior
from bayesinv.priors.diffusion import DiffusionPrior
from bayesinv.priors.exact import (GaussianMixturePosterior, LesionPosteriorSolver, MixtureTestbed,
                                   SharedCovarianceMixturePosterior, exact_lesion_posterior, exact_posterior,
                                   mixture_testbed, random_measurement, sample_exact)
from bayesinv.priors.gaussian import GaussianPrior, StationaryGaussianPrior
from bayesinv.priors.hub import available_models, load_prior
from bayesinv.priors.lesion_mixture import LesionMixturePrior, fit_stationary_background
from bayesinv.priors.mixture import GaussianMixturePrior, grid_mixture
from bayesinv.priors.schedules import Schedule, make_schedule, ve_geometric, vp_cosine, vp_linear

__all__ = ["ScorePrior", "Schedule", "make_schedule", "ve_geometric", "vp_cosine", "vp_linear",
           "GaussianPrior", "StationaryGaussianPrior", "GaussianMixturePrior", "grid_mixture",
           "GaussianMixturePosterior", "MixtureTestbed", "exact_posterior", "sample_exact", "mixture_testbed", "random_measurement",
           "LesionMixturePrior", "fit_stationary_background", "LesionPosteriorSolver",
           "SharedCovarianceMixturePosterior", "exact_lesion_posterior",
           "DiffusionPrior", "load_prior", "available_models"]
