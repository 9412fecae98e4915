"""Diffusion noise schedules, written once: ``x_t = alpha_t * x0 + sigma_t * eps``.

Every schedule is a table over integer timesteps ``t = 0 .. num_steps-1`` (``t = 0`` is the least noisy
level; it is step 1 in Ho et al.'s numbering). Two families:

* **VP** (variance preserving, DDPM; Ho et al. 2020): ``alpha_t = sqrt(abar_t)``,
  ``sigma_t = sqrt(1 - abar_t)``, ``abar_t = prod_{s<=t} (1 - beta_s)``; linear betas
  ``1e-4 -> 0.02`` over 1000 steps, or the cosine schedule (Nichol & Dhariwal 2021).
* **VE** (variance exploding, NCSN/SMLD; Song & Ermon 2019, Song et al. 2021): ``alpha_t = 1``,
  ``sigma_t`` geometric from ``sigma_min`` to ``sigma_max``.

The "noise level" of a timestep in data units is ``sigma_t / alpha_t`` (the std of the noise on
``x_t / alpha_t``); :meth:`Schedule.timestep_for_noise_level` inverts it.

All timestep maths lives here: descending sampler grids (:func:`timesteps`), the start of the reverse
process (:func:`initial_noise`) and the ancestral transition between any two timesteps
(:func:`ancestral_coefficients`). With ``x_t = alpha_t x0 + sigma_t eps`` and ``s < t`` (``s = -1`` is the
clean image: ``alpha = 1``, ``sigma = 0``), ``x_t | x_s ~ N(a x_s, sigma_{t|s}^2)`` with
``a = alpha_t / alpha_s`` and ``sigma_{t|s}^2 = sigma_t^2 - a^2 sigma_s^2``, and

    q(x_s | x_t, x0) = N( a sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x0,
                          sigma_{t|s}^2 sigma_s^2 / sigma_t^2 ),

which is Ho et al. (2020) eq. 6-7 for consecutive VP steps and SMLD's ancestral step for VE.

>>> s = vp_linear()
>>> round(float(s.alpha[0] ** 2 + s.sigma[0] ** 2), 12)
1.0
>>> s = vp_linear(10)
>>> c = ancestral_coefficients(s, 5, 4)
>>> beta = float(s.betas[5]); abar = s.alphas_cumprod
>>> abs(c.variance - beta * float(1 - abar[4]) / float(1 - abar[5])) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["Schedule", "vp_linear", "vp_cosine", "ve_geometric", "make_schedule", "timesteps", "karras_timesteps",
           "AncestralCoefficients", "ancestral_coefficients", "standard_normal", "initial_noise"]


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete diffusion schedule (see module docstring). Tables are float64 on the CPU."""

    kind: str  # "vp" or "ve"
    alpha: torch.Tensor  # (T,)
    sigma: torch.Tensor  # (T,)
    name: str = ""

    @property
    def num_steps(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """``abar_t = alpha_t^2`` (VP only has ``alpha^2 + sigma^2 = 1``)."""
        return self.alpha**2

    @property
    def betas(self) -> torch.Tensor:
        """DDPM's ``beta_t = 1 - abar_t / abar_{t-1}`` (VP only)."""
        if self.kind != "vp":
            raise ValueError("betas are defined for VP schedules only")
        abar = self.alphas_cumprod
        prev = torch.cat([abar.new_ones(1), abar[:-1]])
        return 1 - abar / prev

    def noise_level(self, t) -> torch.Tensor:
        """``sigma_t / alpha_t``: the noise std on ``x_t / alpha_t``, in data units."""
        return self.sigma[_index(t)] / self.alpha[_index(t)]

    def coefficients(self, t, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha_t, sigma_t)`` for timesteps ``t`` (int or ``(B,)``), shaped to broadcast with ``like``."""
        idx = _index(t)
        shape = (-1,) + (1,) * (like.ndim - 1) if idx.ndim else ()
        dtype = like.real.dtype if like.is_complex() else like.dtype
        a = self.alpha[idx].to(device=like.device, dtype=dtype).reshape(shape)
        s = self.sigma[idx].to(device=like.device, dtype=dtype).reshape(shape)
        return a, s

    def add_noise(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """Draw from the forward process: ``alpha_t x0 + sigma_t noise``."""
        a, s = self.coefficients(t, x0)
        return a * x0 + s * noise

    def timestep_for_noise_level(self, level: float) -> int:
        """The timestep whose data-unit noise level ``sigma_t/alpha_t`` is closest to ``level``."""
        levels = self.sigma / self.alpha
        return int(torch.argmin((levels - level).abs()))

    def spaced_timesteps(self, num: int) -> torch.Tensor:
        """``num`` timesteps from ``T-1`` down to ``0`` evenly spaced (DDIM's "uniform" skip), descending."""
        if not 1 <= num <= self.num_steps:
            raise ValueError(f"num steps must be in [1, {self.num_steps}], got {num}")
        return torch.linspace(self.num_steps - 1, 0, num, device="cpu").round().long()

    def to_config(self) -> dict:
        return {"kind": self.kind, "name": self.name, "num_steps": self.num_steps}


def _index(t) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        return t.long().cpu()
    return torch.tensor(int(t), device="cpu")


def vp_linear(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear beta schedule (Ho et al. 2020): betas from ``beta_start`` to ``beta_end``."""
    betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    return Schedule("vp", abar.sqrt(), (1 - abar).sqrt(), name="vp_linear")


def vp_cosine(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Cosine schedule (Nichol & Dhariwal 2021): ``abar(t) = f(t)/f(0)``, ``f = cos^2((t/T+s)/(1+s) pi/2)``."""
    steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    abar = torch.cumprod(1 - betas, 0)
    return Schedule("vp", abar.sqrt(), (1 - abar).sqrt(), name="vp_cosine")


def ve_geometric(num_steps: int = 1000, sigma_min: float = 0.01, sigma_max: float = 50.0) -> Schedule:
    """VE schedule (Song et al. 2021): ``sigma_t`` geometric from ``sigma_min`` to ``sigma_max``, ``alpha_t = 1``."""
    sigma = torch.exp(torch.linspace(math.log(sigma_min), math.log(sigma_max), num_steps, dtype=torch.float64))
    return Schedule("ve", torch.ones(num_steps, dtype=torch.float64), sigma, name="ve_geometric")


def make_schedule(name: str, **kwargs) -> Schedule:
    """Build a schedule by name: ``vp_linear``, ``vp_cosine`` or ``ve_geometric``."""
    table = {"vp_linear": vp_linear, "vp_cosine": vp_cosine, "ve_geometric": ve_geometric}
    if name not in table:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(table)}")
    return table[name](**kwargs)


# -- timestep maths shared by every sampler and by DiffusionPrior.sample -------------------------------
def timesteps(schedule: Schedule, steps: int | None) -> list[int]:
    """``steps`` timesteps from ``T-1`` down to ``0`` (all ``T`` when ``steps`` is None), descending."""
    num = schedule.num_steps if steps is None else int(steps)
    return [int(t) for t in schedule.spaced_timesteps(num)]


def karras_timesteps(schedule: Schedule, num: int, rho: float = 7.0) -> list[int]:
    """At most ``num`` integer timesteps, descending from ``T-1`` to ``0``, whose noise levels ``s = sigma/alpha``
    follow Karras et al. (2022, eq. 5), ``s_i = (s_max^(1/rho) + i/(num-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``,
    each rounded to the timestep of nearest log noise level (repeats dropped, so fewer than ``num`` when the
    schedule is coarse). ``rho = 7`` puts most steps at low noise, where :func:`timesteps`' even spacing in ``t``
    takes one long step (0.14 to 0.01 for 26 steps of ``vp_linear(1000)``).

    >>> karras_timesteps(vp_linear(1000), 6)
    [999, 880, 711, 434, 77, 0]
    """
    if isinstance(num, bool) or not isinstance(num, int) or not 2 <= num <= schedule.num_steps:
        raise ValueError(f"num must be an int in [2, {schedule.num_steps}], got {num!r}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho!r}")
    levels = schedule.noise_level(torch.arange(schedule.num_steps)).double()
    lo, hi = float(levels[0]) ** (1 / rho), float(levels[-1]) ** (1 / rho)
    target = (hi + torch.linspace(0, 1, num, dtype=torch.float64) * (lo - hi)) ** rho
    nearest = (levels[None, :].log() - target[:, None].log()).abs().argmin(dim=1).tolist()
    return sorted({int(t) for t in nearest}, reverse=True)


class AncestralCoefficients(NamedTuple):
    """``q(x_s | x_t, x0) = N(coef_xt x_t + coef_x0 x0, variance)`` (see module docstring)."""

    coef_xt: float
    coef_x0: float
    variance: float
    alpha_s: float
    sigma_s: float


def _alpha_sigma(schedule: Schedule, t: int) -> tuple[float, float]:
    if t < 0:
        return 1.0, 0.0
    return float(schedule.alpha[t]), float(schedule.sigma[t])


def ancestral_coefficients(schedule: Schedule, t: int, s: int) -> AncestralCoefficients:
    """Coefficients of the ancestral transition from timestep ``t`` to ``s < t`` (``s = -1``: clean)."""
    if not s < t:
        raise ValueError(f"ancestral step needs s < t, got t={t}, s={s}")
    alpha_t, sigma_t = _alpha_sigma(schedule, t)
    alpha_s, sigma_s = _alpha_sigma(schedule, s)
    a = alpha_t / alpha_s
    var_ts = max(sigma_t**2 - a**2 * sigma_s**2, 0.0)
    return AncestralCoefficients(a * sigma_s**2 / sigma_t**2, alpha_s * var_ts / sigma_t**2,
                                 var_ts * sigma_s**2 / sigma_t**2, alpha_s, sigma_s)


def standard_normal(shape: Sequence[int], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``N(0, I)`` draws of ``shape`` from ``generator``, with ``like``'s real dtype, on ``like``'s device.

    The draw is made on the generator's device (a CPU generator gives the same numbers whatever ``like``'s
    device) and then moved, so results are reproducible across devices for one generator.
    """
    dtype = like.real.dtype if like.is_complex() else like.dtype
    out = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=generator.device)
    return out.to(device=like.device)


def initial_noise(schedule: Schedule, shape: Sequence[int], generator: torch.Generator,
                  like: torch.Tensor) -> torch.Tensor:
    """``x_T ~ N(0, (alpha_T^2 + sigma_T^2) I)``: ``N(0, I)`` for VP (Ho et al. 2020), ``~N(0, sigma_max^2)`` for VE."""
    alpha, sigma = _alpha_sigma(schedule, schedule.num_steps - 1)
    return math.sqrt(alpha**2 + sigma**2) * standard_normal(shape, generator, like)
