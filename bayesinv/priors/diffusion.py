r"""A diffusion prior: a trained network + schedule as a :class:`~bayesinv.priors.base.ScorePrior`.

``DiffusionPrior(network, schedule, parametrisation)`` wraps the network in the one denoiser contract
(:class:`~bayesinv.priors.networks.denoiser.Denoiser`: eps, x0 or v outputs become ``E[x0 | x_t]``); the score
and the noise prediction then come from :class:`~bayesinv.priors.base.ScorePrior` (Tweedie), so a learned
prior and an exact one go through the same code.

Unconditional sampling runs the reverse process from ``x_T ~ N(0, (alpha_T^2 + sigma_T^2) I)`` over ``steps``
timesteps ``t_N > ... > t_1`` (``grid="uniform"``: evenly spaced in ``t``; ``grid="karras"``: Karras et al.'s
rho = 7 spacing of the noise levels, :func:`~bayesinv.priors.schedules.karras_timesteps`) and a last step to the
clean image:

* ``"ddpm"`` (ancestral; Ho et al. 2020, eq. 6-7, generalised to skipped steps): draw
  ``x_s ~ q(x_s | x_t, x0 = D(x_t, t))``;
* ``"ddim"`` (Song, Meng & Ermon 2021, eq. 12 with ``eta = 0``): ``x_s = alpha_s D + sigma_s eps_hat``,
  ``eps_hat = (x_t - alpha_t D) / sigma_t``;
* ``"heun"`` (Karras et al. 2022, Alg. 1): Heun's second-order method on the probability-flow ODE
  ``dy/ds = (y - D(alpha y, t(s))) / s`` in ``y = x_t / alpha_t``, ``s = sigma_t / alpha_t``, between consecutive
  grid timesteps, then ``D`` at the last one: ``2 steps - 1`` network calls.

The prior has no tractable density: ``log_prob`` raises :class:`~bayesinv.errors.NoDensityError`.

>>> from bayesinv.priors.schedules import vp_linear
>>> from bayesinv.priors.networks.unet import UNet
>>> prior = DiffusionPrior(UNet(base_channels=8, channel_mults=(1,), attention_resolutions=(), image_size=8),
...                        vp_linear(100))
>>> prior.sample_n(2, steps=5, generator=torch.Generator().manual_seed(0)).shape
torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from bayesinv._validation import check_step
from bayesinv.errors import NoDensityError
from bayesinv.priors.base import ScorePrior
from bayesinv.priors.networks.denoiser import Denoiser
from bayesinv.priors.networks.unet import inference_layout
from bayesinv.priors.schedules import Schedule, ancestral_coefficients, karras_timesteps, timesteps

__all__ = ["DiffusionPrior", "SAMPLING_METHODS", "GRIDS"]

SAMPLING_METHODS = ("ddpm", "ddim", "heun")
GRIDS = ("uniform", "karras")


class DiffusionPrior(ScorePrior):
    """A learned prior ``p(x0)`` over images of shape ``event_shape = (C, H, W)``.

    Parameters
    ----------
    network : ``(x: (B, C, H, W), t: (B,) float timesteps) -> (B, C, H, W)``; its output is read as
        ``parametrisation`` (``"eps"``, ``"x0"`` or ``"v"``).
    schedule : the schedule it was trained with.
    event_shape : ``(C, H, W)``; default ``(in_channels, image_size, image_size)`` from ``network.config``.
    name : a label (the model folder's name for :func:`~bayesinv.priors.hub.load_prior`).
    pixel_range : ``(lo, hi)``, the range of the training images' pixels (default ``(0, 1)``; diffusers
        checkpoints usually ``(-1, 1)``). Samplers read their scale defaults from it where an exact prior would
        give its variance: score-SDE's consistency cutoff and annealed Langevin's top noise level.

    The network is put in eval mode and its gradients are not tracked by the prior; ``denoise`` is still
    differentiable in ``x_t`` (DPS backpropagates through it).
    """

    support = torch.distributions.constraints.real_vector

    def __init__(self, network: nn.Module, schedule: Schedule, parametrisation: str = "eps", *,
                 event_shape: Sequence[int] | None = None, name: str = "",
                 pixel_range: tuple[float, float] = (0.0, 1.0), validate_args=None):
        if event_shape is None:
            cfg = getattr(network, "config", None)
            if cfg is None or not hasattr(cfg, "image_size"):
                raise ValueError("event_shape is needed for a network without a config.image_size")
            event_shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        self.denoiser = Denoiser(inference_layout(network.eval().requires_grad_(False)), schedule, parametrisation)
        self.name = name
        lo, hi = (float(v) for v in pixel_range)
        if not lo < hi:
            raise ValueError(f"pixel_range must be (lo, hi) with lo < hi, got {tuple(pixel_range)}")
        self.pixel_range = (lo, hi)
        super().__init__(event_shape, schedule, validate_args=validate_args)

    @property
    def network(self) -> nn.Module:
        return self.denoiser.network

    @property
    def parametrisation(self) -> str:
        return self.denoiser.parametrisation

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> "DiffusionPrior":
        """Move the network to ``device`` (in place) and return the prior."""
        inference_layout(self.network.to(device))
        return self

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """The network runs in its own dtype (float32 weights); ``x_t`` of another precision (the float64
        of exact testbeds and studies) is cast in and the result cast back, differentiably."""
        dtype = next(self.network.parameters()).dtype
        if x_t.dtype == dtype:
            return self.denoiser(x_t, t)
        return self.denoiser(x_t.to(dtype), t).to(x_t.dtype)

    # -- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_n(self, n: int, *, steps: int = 100, generator: torch.Generator | None = None,
                 method: str = "ddpm", grid: str = "uniform", batch_size: int = 256,
                 progress: bool = False) -> torch.Tensor:
        """``n`` unconditional draws ``(n, *event_shape)`` by the reverse process (module docstring).

        ``generator`` (default: a fresh unseeded one) decides the noise; draws are made ``batch_size`` at a time
        on the network's device. Raises :class:`SamplerDivergence` at the first non-finite iterate.
        """
        if method not in SAMPLING_METHODS:
            raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {method!r}")
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.schedule.num_steps:
            raise ValueError(f"steps must be an int in [1, {self.schedule.num_steps}], got {steps!r}")
        generator = generator if generator is not None else torch.Generator()
        device, dtype = self.device, next(self.network.parameters()).dtype
        if method == "heun" and steps < 2:
            raise ValueError(f"heun needs steps >= 2 (the ends of one interval), got {steps}")
        ts = karras_timesteps(self.schedule, steps) if grid == "karras" and steps > 1 else timesteps(self.schedule,
                                                                                                     steps)
        name = f"DiffusionPrior.sample({method})"
        out = []
        for start in range(0, n, batch_size):
            shape = (min(batch_size, n - start), *self.event_shape)
            t_last = self.schedule.num_steps - 1
            std = float(self.schedule.alpha[t_last] ** 2 + self.schedule.sigma[t_last] ** 2) ** 0.5
            x = std * _randn(shape, generator, dtype, device)
            if method == "heun":
                out.append(self._heun(x, ts, name, progress))
                continue
            pairs = list(zip(ts, ts[1:] + [-1]))
            for i, (t, s) in enumerate(tqdm(pairs, disable=not progress, desc=name)):
                x0 = self.denoise(x, t)
                c = ancestral_coefficients(self.schedule, t, s)
                if s < 0:
                    x = x0
                elif method == "ddpm":
                    x = c.coef_xt * x + c.coef_x0 * x0 + c.variance**0.5 * _randn(shape, generator, dtype, device)
                else:
                    alpha_t, sigma_t = float(self.schedule.alpha[t]), float(self.schedule.sigma[t])
                    x = c.alpha_s * x0 + c.sigma_s * (x - alpha_t * x0) / sigma_t
                check_step(name, i, x)
            out.append(x)
        return torch.cat(out) if out else torch.zeros(0, *self.event_shape, dtype=dtype, device=device)

    def _heun(self, x: torch.Tensor, ts: list[int], name: str, progress: bool) -> torch.Tensor:
        """Heun's method on the probability-flow ODE from ``x = x_{ts[0]}`` (module docstring)."""
        alpha = [float(self.schedule.alpha[t]) for t in ts]
        level = [float(self.schedule.noise_level(t)) for t in ts]

        def slope(y, i):
            return (y - self.denoise(alpha[i] * y, ts[i])) / level[i]

        y = x / alpha[0]
        for i in tqdm(range(len(ts) - 1), disable=not progress, desc=name):
            d = slope(y, i)
            y_euler = y + (level[i + 1] - level[i]) * d
            check_step(name, i, y_euler)
            y = y + (level[i + 1] - level[i]) * (d + slope(y_euler, i + 1)) / 2
            check_step(name, i, y)
        x0 = self.denoise(alpha[-1] * y, ts[-1])
        check_step(name, len(ts) - 1, x0)
        return x0

    def sample(self, sample_shape=torch.Size(), **options) -> torch.Tensor:
        """Draws of shape ``sample_shape + event_shape``; ``options`` go to :meth:`sample_n`."""
        shape = torch.Size(sample_shape)
        return self.sample_n(shape.numel(), **options).reshape(shape + self.event_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NoDensityError("a diffusion prior has no tractable density: log p(x0) would need the probability-flow "
                             "ODE's divergence integral (Song et al. 2021), which is not implemented; use the "
                             "score/denoiser (samplers do), or an exact prior (GaussianPrior, GaussianMixturePrior)")

    def __repr__(self) -> str:
        return (f"DiffusionPrior(name={self.name!r}, event_shape={tuple(self.event_shape)}, "
                f"parametrisation={self.parametrisation!r}, schedule={self.schedule.name!r})")


def _randn(shape, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device).to(device)
