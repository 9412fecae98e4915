"""Noise models, separate from operators: ``y ~ noise(A(x))``.

The likelihood ``log p(y | A(x))`` is written here once (:meth:`NoiseModel.log_prob`); Pyro models,
samplers and diagnostics all read it from here. Complex measurements (MRI k-space) are treated as
pairs of reals: complex Gaussian noise has independent ``N(0, sigma^2)`` real and imaginary parts.

>>> import torch
>>> noise = Gaussian(0.1)
>>> y = torch.zeros(1, 3)
>>> round(float(noise.log_prob(y, torch.zeros(1, 3))[0]), 4)  # 3 * log N(0 | 0, 0.1^2)
4.1509
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from bayesinv._validation import check_finite, check_tensor
from bayesinv.errors import ShapeError

__all__ = ["NoiseModel", "Gaussian", "Poisson", "as_real_view"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def as_real_view(y: torch.Tensor) -> torch.Tensor:
    """Complex ``(..., )`` -> real ``(..., 2)``; real tensors are returned unchanged."""
    return torch.view_as_real(y) if y.is_complex() else y


class NoiseModel:
    """A measurement noise model. Subclasses implement :meth:`distribution` and :meth:`sample`."""

    #: names and priors of latent noise parameters (e.g. an unknown sigma)
    latents: dict[str, dist.Distribution] = {}

    def distribution(self, mean: torch.Tensor, **latents) -> dist.Distribution:
        """The distribution of ``y`` (real view) given ``mean = A(x)``; every non-batch dim is an event dim."""
        raise NotImplementedError

    def log_prob(self, y: torch.Tensor, mean: torch.Tensor, **latents) -> torch.Tensor:
        """``log p(y | mean)`` per batch item ``(B,)``; ``y`` broadcasts against ``mean: (B, ...)``."""
        check_tensor("y", y)
        if y.is_complex() != mean.is_complex():
            raise ShapeError(f"y is {'complex' if y.is_complex() else 'real'} but the operator's output is "
                             f"{'complex' if mean.is_complex() else 'real'}")
        return self.distribution(mean, **latents).log_prob(as_real_view(y))

    def sample(self, mean: torch.Tensor, *, generator: torch.Generator | None = None, **latents) -> torch.Tensor:
        """Draw ``y`` given ``mean = A(x)`` with an explicit generator."""
        raise NotImplementedError

    def observe(self, name: str, mean: torch.Tensor, obs: torch.Tensor | None, **latents) -> torch.Tensor:
        """The Pyro sample statement ``name ~ noise(mean)`` (observed when ``obs`` is given)."""
        value = pyro.sample(name, self.distribution(mean, **latents),
                            obs=None if obs is None else as_real_view(obs).expand_as(as_real_view(mean)))
        return torch.view_as_complex(value.contiguous()) if mean.is_complex() else value

    def sample_latents(self) -> dict[str, torch.Tensor]:
        """Pyro sample statements for the latent noise parameters (inside a model)."""
        return {name: pyro.sample(name, prior) for name, prior in self.latents.items()}


class Gaussian(NoiseModel):
    """Additive white Gaussian noise ``y = A(x) + sigma * n``.

    ``sigma`` is a positive float (known) or a Pyro distribution over sigma (a latent named ``sigma``,
    e.g. ``dist.LogNormal(-3, 0.5)``) which is then sampled jointly with ``x``.
    """

    def __init__(self, sigma: float | dist.Distribution):
        if isinstance(sigma, dist.Distribution):
            self.sigma = None
            self.latents = {"sigma": sigma}
        else:
            sigma = float(sigma)
            if not (sigma > 0 and math.isfinite(sigma)):
                raise ValueError(f"Gaussian noise sigma must be a positive finite number, got {sigma}")
            self.sigma = sigma
            self.latents = {}

    def _sigma(self, latents: dict):
        if self.sigma is not None:
            return self.sigma
        if "sigma" not in latents:
            raise ValueError("this Gaussian noise has a latent sigma: pass sigma=... (a tensor)")
        return latents["sigma"]

    def distribution(self, mean, **latents):
        mean = as_real_view(mean)
        sigma = self._sigma(latents)
        if isinstance(sigma, torch.Tensor) and sigma.ndim:
            sigma = sigma.reshape(sigma.shape + (1,) * (mean.ndim - sigma.ndim))
        return dist.Normal(mean, sigma).to_event(mean.ndim - 1)

    def log_prob(self, y: torch.Tensor, mean: torch.Tensor, **latents) -> torch.Tensor:
        """``log N(y | mean, sigma^2 I)`` per batch item ``(B,)``, in closed form (no distribution object and
        no argument validation, which would cost a host synchronisation per call on a GPU):
        ``-||y - mean||^2 / (2 sigma^2) - d log sigma - d log(2 pi) / 2`` with ``d`` real entries."""
        check_tensor("y", y)
        if y.is_complex() != mean.is_complex():
            raise ShapeError(f"y is {'complex' if y.is_complex() else 'real'} but the operator's output is "
                             f"{'complex' if mean.is_complex() else 'real'}")
        diff = as_real_view(y - mean)
        diff = diff.reshape(diff.shape[0], -1)
        d = diff.shape[1]
        sigma = self._sigma(latents)
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.reshape(-1) if sigma.ndim else sigma
            return -diff.square().sum(dim=1) / (2 * sigma**2) - d * torch.log(sigma) - d * _HALF_LOG_2PI
        return -diff.square().sum(dim=1) / (2 * sigma**2) - d * (math.log(sigma) + _HALF_LOG_2PI)

    def sample(self, mean, *, generator=None, **latents):
        sigma = self._sigma(latents)
        if isinstance(sigma, torch.Tensor) and sigma.ndim:
            sigma = sigma.reshape(sigma.shape + (1,) * (mean.ndim - sigma.ndim))
        real_dtype = mean.real.dtype if mean.is_complex() else mean.dtype
        noise = torch.randn(as_real_view(mean).shape, generator=generator, dtype=real_dtype, device=mean.device)
        if mean.is_complex():  # independent N(0, sigma^2) real and imaginary parts
            noise = torch.view_as_complex(noise)
        return mean + sigma * noise

    def __repr__(self) -> str:
        return f"Gaussian(sigma={self.sigma if self.sigma is not None else self.latents['sigma']})"


class Poisson(NoiseModel):
    """Photon-counting noise ``y ~ Poisson(gain * A(x)) / gain`` (``A(x) >= 0``; ``gain`` = counts per unit).

    The log-likelihood is that of the counts ``gain * y``; the rate is clamped at ``min_rate`` so that
    gradients stay finite where ``A(x)`` touches zero.
    """

    def __init__(self, gain: float = 100.0, min_rate: float = 1e-6):
        if not gain > 0:
            raise ValueError(f"Poisson gain must be positive, got {gain}")
        self.gain = float(gain)
        self.min_rate = float(min_rate)
        self.latents = {}

    def distribution(self, mean, **latents):
        if mean.is_complex():
            raise ShapeError("Poisson noise needs real, non-negative measurements; the operator's output is complex")
        return _ScaledPoisson(mean, self.gain, self.min_rate)

    def sample(self, mean, *, generator=None, **latents):
        check_finite("mean", mean)
        rate = (self.gain * mean).clamp_min(0)
        return torch.poisson(rate, generator=generator) / self.gain

    def __repr__(self) -> str:
        return f"Poisson(gain={self.gain})"


class _ScaledPoisson(dist.TorchDistribution):
    """``y = k / gain`` with ``k ~ Poisson(gain * mean)``; log-density of the counts, summed over events."""

    arg_constraints: dict = {}
    support = dist.constraints.real

    def __init__(self, mean, gain, min_rate):
        self.mean_ = mean
        self.gain = gain
        self.min_rate = min_rate
        super().__init__(batch_shape=mean.shape[:1], event_shape=mean.shape[1:], validate_args=False)

    def log_prob(self, value):
        rate = (self.gain * self.mean_).clamp_min(self.min_rate)
        counts = self.gain * value
        lp = counts * torch.log(rate) - rate - torch.lgamma(counts + 1)
        return lp.reshape(lp.shape[0], -1).sum(1)

    def sample(self, sample_shape=torch.Size()):
        return torch.poisson((self.gain * self.mean_).clamp_min(0).expand(sample_shape + self.mean_.shape)) / self.gain

    def expand(self, batch_shape, _instance=None):
        return _ScaledPoisson(self.mean_.expand(tuple(batch_shape) + self.mean_.shape[1:]), self.gain, self.min_rate)
