r"""Network parametrisations behind one denoiser contract, written once (as in EDM's ``networks.py``).

A diffusion network ``F(c_in x_t, t)`` may predict the noise (``eps``), the clean image (``x0``) or the
velocity (``v``; Salimans & Ho 2022). With ``x_t = alpha x0 + sigma eps`` (any schedule) the three map to the
one quantity samplers use, the denoiser ``D(x_t, t) = E[x0 | x_t]``:

==========  ================================  =============================================
param       training target                   ``D`` from the output ``F``
==========  ================================  =============================================
``eps``     ``eps``                           ``(x_t - sigma F) / alpha``
``x0``      ``x0``                            ``F``
``v``       ``alpha eps - sigma x0``          ``(alpha x_t - sigma F) / (alpha^2 + sigma^2)``
==========  ================================  =============================================

The input is scaled by ``c_in = 1 / sqrt(alpha^2 + sigma^2)`` (Karras et al. 2022 with unit data scale):
exactly 1 for VP schedules, so networks trained elsewhere on raw ``x_t`` (e.g. diffusers) plug in unchanged,
and a VE input of std ``~sigma_max`` is brought to order one.

>>> import torch
>>> alpha, sigma = torch.tensor(0.6), torch.tensor(0.8)
>>> x0, eps = torch.ones(1, 4), torch.full((1, 4), -0.5)
>>> x_t = alpha * x0 + sigma * eps
>>> out = training_target("v", x0, eps, alpha, sigma)
>>> torch.allclose(output_to_x0("v", out, x_t, alpha, sigma), x0)
True
"""

from __future__ import annotations

import torch
from torch import nn

from bayesinv.priors.schedules import Schedule

__all__ = ["PARAMETRISATIONS", "check_parametrisation", "output_to_x0", "x0_to_output", "training_target",
           "Denoiser"]

PARAMETRISATIONS = ("eps", "x0", "v")


def check_parametrisation(parametrisation: str) -> str:
    """Return ``parametrisation`` if it is one of ``eps``, ``x0``, ``v``; raise a clear ``ValueError`` otherwise."""
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}")
    return parametrisation


def output_to_x0(parametrisation: str, output: torch.Tensor, x_t: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """The denoiser ``E[x0 | x_t]`` from a network output (table in the module docstring)."""
    if parametrisation == "eps":
        return (x_t - sigma * output) / alpha
    if parametrisation == "x0":
        return output
    if parametrisation == "v":
        return (alpha * x_t - sigma * output) / (alpha**2 + sigma**2)
    raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}")


def x0_to_output(parametrisation: str, x0: torch.Tensor, x_t: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """The inverse of :func:`output_to_x0`: the output a network must give for denoiser value ``x0``.

    Used to wrap an exact denoiser (an analytic prior) as a network of any parametrisation.
    """
    eps = (x_t - alpha * x0) / sigma
    return training_target(parametrisation, x0, eps, alpha, sigma)


def training_target(parametrisation: str, x0: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """The regression target of the denoising loss ``E ||F(x_t, t) - target||^2`` (Ho et al. 2020 for eps)."""
    if parametrisation == "eps":
        return eps
    if parametrisation == "x0":
        return x0
    if parametrisation == "v":
        return alpha * eps - sigma * x0
    raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}")


class Denoiser(nn.Module):
    """``D(x_t, t) = E[x0 | x_t]`` from ``network(c_in x_t, t)`` of the given parametrisation and schedule.

    Parameters
    ----------
    network : a module ``(x: (B, C, H, W), t: (B,) float timesteps) -> (B, C, H, W)``.
    schedule : the :class:`~bayesinv.priors.schedules.Schedule` the network was trained with.
    parametrisation : ``"eps"``, ``"x0"`` or ``"v"``.
    """

    def __init__(self, network: nn.Module, schedule: Schedule, parametrisation: str = "eps"):
        super().__init__()
        self.network = network
        self.schedule = schedule
        self.parametrisation = check_parametrisation(parametrisation)

    def raw(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network output ``F(c_in x_t, t)`` for timesteps ``t: (B,)`` (long or float)."""
        alpha, sigma = self.schedule.coefficients(t, x_t)
        c_in = torch.rsqrt(alpha**2 + sigma**2)
        return self.network(c_in * x_t, t.to(device=x_t.device, dtype=x_t.dtype))

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = _batch_timesteps(t, x_t)
        alpha, sigma = self.schedule.coefficients(t, x_t)
        return output_to_x0(self.parametrisation, self.raw(x_t, t), x_t, alpha, sigma)


def _batch_timesteps(t, x_t: torch.Tensor) -> torch.Tensor:
    """``t`` (int, 0-d or ``(B,)``) as a ``(B,)`` long tensor on the CPU (schedule tables live there)."""
    t = torch.as_tensor(t, device=t.device if isinstance(t, torch.Tensor) else "cpu").long().cpu().reshape(-1)
    if t.numel() == 1:
        t = t.expand(x_t.shape[0])
    if t.shape[0] != x_t.shape[0]:
        raise ValueError(f"t must be a scalar or have shape ({x_t.shape[0]},), got {tuple(t.shape)}")
    return t
