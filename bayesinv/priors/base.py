"""The prior contract: ``denoise(x_t, t)`` and ``score(x_t, t)``, the score derived in one place.

A prior over images ``x0`` with a diffusion ``schedule`` (``x_t = alpha_t x0 + sigma_t eps``) exposes

* ``denoise(x_t, t) = E[x0 | x_t]`` (the MMSE denoiser; exact for analytic priors, a network otherwise),
* ``score(x_t, t) = grad log p_t(x_t) = (alpha_t E[x0 | x_t] - x_t) / sigma_t^2`` (Tweedie's formula),
* ``eps(x_t, t) = (x_t - alpha_t E[x0|x_t]) / sigma_t``.

Only ``denoise`` is implemented by subclasses; score and eps are derived here and nowhere else.

The prior also states its scale, which samplers read for their defaults and for divergence checks:
``explicit_variance`` (the marginal variance of analytic priors, ``None`` for network priors), ``pixel_span``
(``hi - lo`` of a network prior's declared ``pixel_range``), ``scale`` (root mean variance, or
:data:`NETWORK_SCALE_FRACTION` of the pixel span) and ``value_range`` (where its pixels live).
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

__all__ = ["ScorePrior", "NETWORK_SCALE_FRACTION", "RANGE_STDS"]

#: the scale of a prior without an explicit variance (a network prior), as a fraction of its pixel span
#: (phantom32's training images: root mean pixel variance 0.110 in [0, 1], ``python benchmarks/phantoms.py``)
NETWORK_SCALE_FRACTION = 0.1

#: an analytic prior's pixel values are taken to lie within ``mean +- RANGE_STDS std`` (:attr:`ScorePrior.value_range`)
RANGE_STDS = 4.0


class ScorePrior(TorchDistribution):
    """Base class of priors with a denoiser/score (see module docstring)."""

    arg_constraints: dict = {}
    has_rsample = False
    #: the tensor attributes :meth:`to` moves (each analytic prior names its own; the schedule stays on the CPU
    #: and its coefficients are moved to the input's device when read)
    _tensor_attributes: tuple[str, ...] = ()

    def __init__(self, event_shape: Sequence[int], schedule: Schedule, validate_args=None):
        self.schedule = schedule
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size(tuple(event_shape)),
                         validate_args=validate_args)

    # -- device -----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the prior's tensors live (the CPU for a prior without any)."""
        for name in self._tensor_attributes:
            value = self.__dict__.get(name)
            if isinstance(value, torch.Tensor):
                return value.device
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> ScorePrior:
        """Move the prior's tensors to ``device`` in place and return the prior (like ``Operator.to``): its
        denoiser, score and densities then take and return tensors there, and its draws land there."""
        device = torch.device(device)
        for name in self._tensor_attributes:
            value = self.__dict__.get(name)
            if isinstance(value, torch.Tensor):
                self.__dict__[name] = value.to(device)
        return self

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

    # -- scale ------------------------------------------------------------------------------------
    @property
    def explicit_variance(self) -> torch.Tensor | None:
        """The marginal variance ``(*event_shape)`` of priors that have one (analytic priors), else ``None``
        (network priors, whose ``variance`` inherited from ``torch.distributions`` raises)."""
        try:
            return self.variance
        except NotImplementedError:
            return None

    @property
    def pixel_span(self) -> float | None:
        """``hi - lo`` of the declared ``pixel_range`` of a prior without an explicit variance (``(0, 1)`` when
        it declares none), or ``None`` for priors with a variance (the exact testbeds)."""
        if self.explicit_variance is not None:
            return None
        lo, hi = getattr(self, "pixel_range", (0.0, 1.0))
        return float(hi) - float(lo)

    @property
    def scale(self) -> float:
        """The root mean marginal variance, or ``NETWORK_SCALE_FRACTION`` of the pixel span for priors without
        a variance (network priors)."""
        variance = self.explicit_variance
        if variance is None:
            return NETWORK_SCALE_FRACTION * float(self.pixel_span)
        return float(variance.mean().sqrt())

    @property
    def value_range(self) -> tuple[float, float]:
        """``(lo, hi)`` holding the prior's pixels: the declared ``pixel_range`` of network priors, and
        ``(min(mean - k std), max(mean + k std))`` with ``k =`` :data:`RANGE_STDS` for analytic priors."""
        variance = self.explicit_variance
        if variance is None:
            lo, hi = getattr(self, "pixel_range", (0.0, 1.0))
            return float(lo), float(hi)
        mean, std = self.mean.to(torch.float64), variance.to(torch.float64).clamp_min(0).sqrt()
        return float((mean - RANGE_STDS * std).min()), float((mean + RANGE_STDS * std).max())

    def expand(self, batch_shape, _instance=None):
        """Independent copies for Pyro plates (``sample``/``log_prob`` broadcast over ``batch_shape``)."""
        batch_shape = torch.Size(batch_shape)
        return self if batch_shape == torch.Size() else ExpandedDistribution(self, batch_shape)
