"""The prior contract: ``denoise(x_t, t)`` and ``score(x_t, t)``, the score derived in one place.

A prior over images ``x0`` with a diffusion ``schedule`` (``x_t = alpha_t x0 + sigma_t eps``) exposes

* ``denoise(x_t, t) = E[x0 | x_t]`` (the MMSE denoiser; exact for analytic priors, a network otherwise),
* ``score(x_t, t) = grad log p_t(x_t) = (alpha_t E[x0 | x_t] - x_t) / sigma_t^2`` (Tweedie's formula),
* ``eps(x_t, t) = (x_t - alpha_t E[x0|x_t]) / sigma_t``.

Only ``denoise`` is implemented by subclasses; score and eps are derived here and nowhere else.
Priors are Pyro distributions (``event_shape`` is the image shape) so they slot into the
:class:`~bayesinv.problem.InverseProblem` model as ``x ~ prior``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pyro.distributions import TorchDistribution
from pyro.distributions.torch_distribution import ExpandedDistribution

from bayesinv._validation import check_batch_shape
from bayesinv.priors.schedules import Schedule

__all__ = ["ScorePrior"]


class ScorePrior(TorchDistribution):
    """Base class of priors with a denoiser/score (see module docstring)."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, event_shape: Sequence[int], schedule: Schedule, validate_args=None):
        self.schedule = schedule
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size(tuple(event_shape)),
                         validate_args=validate_args)

    # -- the contract -------------------------------------------------------------------------
    def denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``E[x0 | x_t]`` for a batch ``x_t: (B, *event_shape)`` at timesteps ``t`` (int or ``(B,)``)."""
        check_batch_shape("x_t", x_t, self.event_shape)
        return self._denoise(x_t, t)

    def score(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """``grad_x log p_t(x_t) = (alpha_t E[x0|x_t] - x_t) / sigma_t^2`` (Tweedie)."""
        alpha, sigma = self.schedule.coefficients(t, x_t)
        return (alpha * self.denoise(x_t, t) - x_t) / sigma**2

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """The noise prediction ``(x_t - alpha_t E[x0|x_t]) / sigma_t``."""
        alpha, sigma = self.schedule.coefficients(t, x_t)
        return (x_t - alpha * self.denoise(x_t, t)) / sigma

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        raise NotImplementedError

    def expand(self, batch_shape, _instance=None):
        """Independent copies for Pyro plates (``sample``/``log_prob`` broadcast over ``batch_shape``)."""
        batch_shape = torch.Size(batch_shape)
        return self if batch_shape == torch.Size() else ExpandedDistribution(self, batch_shape)
