r"""Denoising diffusion restoration models (DDRM; Kawar, Elad, Ermon, Song 2022, NeurIPS).

DDRM works in the spectral space of the operator ``A = U diag(s) V^H`` (:meth:`LinearOperator.svd`),
on the variance-exploding view ``x_mod = x_t / alpha_t`` whose noise level is
``sigma_t = sqrt(1 - abar_t) / sqrt(abar_t)`` (the schedule's ``noise_level``). With
``ybar = diag(s)^-1 U^H y`` (noise std ``sigma_0 / s_i``), ``xbar0 = V^H x0_hat`` and ``ebar = V^H eps_hat``,
the step from noise level ``sigma_t`` to ``sigma_s`` draws each spectral coefficient ``i`` as
(eq. 7-8 of the paper, in the form of the authors' ``efficient_generalized_steps``)

* missing (``s_i = 0``):                 ``xbar0_i + sqrt(1 - eta^2) sigma_s ebar_i + eta sigma_s z``
* less noisy than y (``s_i sigma_s < sigma_0``): ``xbar0_i + sqrt(1 - eta^2) sigma_s (ybar_i - xbar0_i)
  s_i / sigma_0 + eta sigma_s z``
* noisier than y (``s_i sigma_s > sigma_0``):    ``eta_b ybar_i + (1 - eta_b) xbar0_i
  + sqrt(sigma_s^2 - eta_b^2 sigma_0^2 / s_i^2) z``

and ``x_s = alpha_s V xbar_s``. The last step (``sigma_s = 0``) returns ``x0_hat``. The start
``x_T`` takes ``ybar_i`` plus noise of std ``sqrt(sigma_T^2 - sigma_0^2/s_i^2)`` on coefficients with
``s_i sigma_T > sigma_0`` and pure noise elsewhere. Defaults are the authors' (``main.py``): ``eta = 0.85``,
``eta_b = 1``, 20 steps at timesteps ``0, skip, 2 skip, ...`` with ``skip = T // steps``.

Two deliberate departures from the authors' code: ``x_T = alpha_T x_mod`` (the code divides by
``sigma_T``, which differs by ``sqrt(1 - abar_T) ~ 1``), and spectral noise is drawn as ``V^H z`` for
white image-space noise ``z``, so that complex singular vectors of real images (the Fourier basis of
MRI) receive correctly correlated noise. For complex measurements of real images the noise
``sigma_0`` is taken as ``sqrt(2) sigma_y`` (real and imaginary parts each carry ``sigma_y^2``), the
same ``E|.|^2`` convention as ``V^H z``.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior
>>> problem = InverseProblem(Identity((3,)), Gaussian(0.1), GaussianPrior(torch.zeros(3), 1.0))
>>> post = sample_ddrm(problem, torch.zeros(1, 3, dtype=torch.float64), num_samples=2,
...                    generator=torch.Generator().manual_seed(0), progress=False)
>>> tuple(post.samples.shape), post.nfe
((2, 1, 3), 20)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from bayesinv._validation import check_number
from bayesinv.noise import Gaussian
from bayesinv.operators.base import SVD, LinearOperator
from bayesinv.posterior import Posterior
from bayesinv.priors.schedules import standard_normal
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import (Clock, case_measurements, case_posteriors, check_inputs, draw_in_chunks,
                                       run_chain, timestep_bound)

__all__ = ["sample_ddrm", "sample_ddrm_cases", "ddrm_step", "DDRMState", "DDRMSpectrum", "ddrm_timesteps"]


class DDRMState(NamedTuple):
    """The iterate ``x`` at timestep ``t`` (``-1``: finished) and the last ``x0_hat``."""

    x: torch.Tensor
    t: int
    x0_hat: torch.Tensor | None = None


class DDRMSpectrum(NamedTuple):
    """The operator's SVD with the measurement in spectral form: ``ybar = U^H y / s`` on the first ``r``."""

    svd: SVD
    singulars: torch.Tensor  # (r,) positive
    ybar: torch.Tensor  # (1, r), or (chains, r) for the chains of several cases
    sigma_0: float
    real_images: bool


def ddrm_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The authors' skip schedule ``[0, skip, ..., (steps-1) skip]`` with ``skip = T // steps``, descending."""
    skip = num_timesteps // steps
    return [i * skip for i in range(steps)][::-1]


def _spectrum(problem: InverseProblem, y: torch.Tensor, latents: Mapping[str, torch.Tensor]) -> DDRMSpectrum:
    op = problem.chain_operator(latents)
    svd = op.svd_or_none() if isinstance(op, LinearOperator) else None
    if svd is None:
        raise TypeError(f"ddrm needs a linear operator with an SVD (operator.svd()); {type(op).__name__} has none")
    if not isinstance(problem.noise, Gaussian):
        raise TypeError(f"ddrm needs Gaussian measurement noise, got {problem.noise!r}")
    sigma = problem.gaussian_noise_std(latents)
    if isinstance(sigma, torch.Tensor):
        if not bool((sigma == sigma[0]).all()):
            raise ValueError("ddrm needs one noise level for all chains; pass a scalar latents={'sigma': ...}")
        sigma = float(sigma[0])
    singulars = svd.singulars.to(device=y.device, dtype=y.real.dtype)
    keep = singulars > 0
    r = int(keep.sum())
    if not bool(keep[:r].all()):
        raise ValueError("ddrm expects the positive singular values first in the SVD")
    uty = svd.Ut(y)[:, :r]
    real_images = not op.input_complex
    sigma_0 = sigma * (math.sqrt(2.0) if (real_images and y.is_complex()) else 1.0)
    return DDRMSpectrum(svd, singulars[:r], uty / singulars[:r], sigma_0, real_images)


def _image(spec: DDRMSpectrum, coef: torch.Tensor) -> torch.Tensor:
    x = spec.svd.V(coef)
    return x.real if (spec.real_images and x.is_complex()) else x


def _spectral_noise(spec: DDRMSpectrum, noise: torch.Tensor) -> torch.Tensor:
    """``V^H z`` for white image-space noise ``z`` (correct noise for complex singular vectors)."""
    return spec.svd.Vt(noise)


def ddrm_step(state: DDRMState, s: int, *, prior, spectrum: DDRMSpectrum, eta: float, eta_b: float,
              noise: torch.Tensor) -> DDRMState:
    """One DDRM step from ``state.t`` to ``s`` with standard normal image-space ``noise`` (pure function)."""
    schedule = prior.schedule
    alpha_t, sigma_t = (float(v) for v in (schedule.alpha[state.t], schedule.sigma[state.t]))
    alpha_s = 1.0 if s < 0 else float(schedule.alpha[s])
    sigma_next = 0.0 if s < 0 else float(schedule.sigma[s]) / alpha_s
    x0_hat = prior.denoise(state.x, state.t)
    eps = (state.x - alpha_t * x0_hat) / sigma_t
    sing, r, sigma_0 = spectrum.singulars, spectrum.singulars.shape[0], spectrum.sigma_0
    vt_x0 = spectrum.svd.Vt(x0_hat)
    vt_eps = spectrum.svd.Vt(eps)
    z = _spectral_noise(spectrum, noise)
    std_next = sigma_next * eta
    tilde_next = math.sqrt(max(sigma_next**2 - std_next**2, 0.0))
    new = vt_x0 + tilde_next * vt_eps + std_next * z  # missing coefficients (and the default)
    # both branches are computed and selected per coefficient: no host read of "does any coefficient take this
    # branch" (an (n, r) elementwise update costs nothing next to the network call)
    before = sing * sigma_next > sigma_0
    after = sing * sigma_next < sigma_0
    vt_x0_head, z_head = vt_x0[:, :r], z[:, :r]
    resid = (spectrum.ybar - vt_x0_head) * sing / sigma_0
    head = torch.where(after, vt_x0_head + tilde_next * resid + std_next * z_head, new[:, :r])
    extra = (sigma_next**2 - (sigma_0 / sing) ** 2 * eta_b**2).clamp_min(0).sqrt()
    head = torch.where(before, spectrum.ybar * eta_b + (1 - eta_b) * vt_x0_head + extra * z_head, head)
    new = torch.cat([head, new[:, r:]], dim=1)
    return DDRMState(alpha_s * _image(spectrum, new), s, x0_hat)


def ddrm_initial(spectrum: DDRMSpectrum, schedule, t: int, noise: torch.Tensor) -> torch.Tensor:
    """``x_T = alpha_T V xbar_T`` with ``xbar_T`` drawn from ``q(x_T | y)`` of the paper (see module docstring)."""
    alpha_t = float(schedule.alpha[t])
    sigma_t = float(schedule.sigma[t]) / alpha_t
    sing, r = spectrum.singulars, spectrum.singulars.shape[0]
    z = _spectral_noise(spectrum, noise)
    large = sing * sigma_t > spectrum.sigma_0
    std = torch.full((z.shape[1],), sigma_t, dtype=sing.dtype, device=z.device)
    std[:r] = torch.where(large, (sigma_t**2 - (spectrum.sigma_0 / sing) ** 2).clamp_min(0).sqrt(), std[:r])
    mean = torch.zeros_like(z)
    mean[:, :r] = torch.where(large, spectrum.ybar, torch.zeros_like(spectrum.ybar))
    return alpha_t * _image(spectrum, mean + std * z)


def sample_ddrm(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int = 20,
                generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                eta: float = 0.85, eta_b: float = 1.0, latents: Mapping[str, Any] | None = None) -> Posterior:
    """Draw ``num_samples`` independent DDRM samples (Kawar et al. 2022; see module docstring).

    Parameters
    ----------
    problem : linear operator with ``svd()``, Gaussian noise, ScorePrior prior.
    y : the measurement; num_samples, steps, generator, batch_size, progress, callback: as for every sampler.
    eta, eta_b : DDRM's ``eta`` (``eta_A = eta_C``) and ``eta_B``.
    latents : fixed values of latent sites (e.g. the noise sigma).

    Returns
    -------
    Posterior with samples ``(num_samples, 1, *event_shape)`` and ``nfe = steps``.
    """
    return _ddrm(problem, y, cases=False, num_samples=num_samples, steps=steps, generator=generator,
                 batch_size=batch_size, progress=progress, callback=callback, eta=eta, eta_b=eta_b,
                 latents=latents)[0]


def sample_ddrm_cases(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int = 20,
                      generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                      callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                      eta: float = 0.85, eta_b: float = 1.0,
                      latents: Mapping[str, Any] | None = None) -> list[Posterior]:
    """:func:`sample_ddrm` for ``G`` measurements of one problem at once: ``y: (G, *out_shape)``.

    DDRM's chains are independent given ``y``, so the ``G * num_samples`` chains (case-major) run as one batch
    and every step makes one network call for all cases (``batch_size`` bounds the chains per call). The
    operator's SVD and the noise level are shared; only ``ybar = U^H y / s`` differs between cases. Returns one
    Posterior per case, ``(num_samples, 1, *event_shape)`` each, with ``wall_time`` the call's time over ``G``.
    The draws of a case depend on its position in ``y`` and on ``G`` (one generator serves the call); with
    ``G = 1`` they are those of :func:`sample_ddrm` bit for bit.

    >>> import torch
    >>> from bayesinv import Gaussian, InverseProblem
    >>> from bayesinv.operators import Identity
    >>> from bayesinv.priors import GaussianPrior
    >>> problem = InverseProblem(Identity((3,)), Gaussian(0.1), GaussianPrior(torch.zeros(3), 1.0))
    >>> posts = sample_ddrm_cases(problem, torch.zeros(4, 3, dtype=torch.float64), num_samples=2,
    ...                           generator=torch.Generator().manual_seed(0), progress=False)
    >>> len(posts), tuple(posts[0].samples.shape), posts[0].extras["cases_per_call"]
    (4, (2, 1, 3), 4)
    """
    return _ddrm(problem, y, cases=True, num_samples=num_samples, steps=steps, generator=generator,
                 batch_size=batch_size, progress=progress, callback=callback, eta=eta, eta_b=eta_b,
                 latents=latents)


def _ddrm(problem: InverseProblem, y: torch.Tensor, *, cases: bool, num_samples: int, steps: int,
          generator: torch.Generator, batch_size: int | None, progress: bool, callback, eta: float, eta_b: float,
          latents: Mapping[str, Any] | None) -> list[Posterior]:
    name = "ddrm"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                     bounded_by_schedule=True, cases=cases)
    eta = check_number("eta", eta, low=0.0, high=1.0, owner=name)
    eta_b = check_number("eta_b", eta_b, low=0.0, high=1.0, owner=name)
    all_latents = problem.resolve_latents(latents, num_samples, y)
    spectrum = _spectrum(problem, y, all_latents)
    prior = problem.prior
    ts = ddrm_timesteps(prior.schedule.num_steps, steps)
    nexts = ts[1:] + [-1]
    shape = tuple(prior.event_shape)
    clock = Clock()
    real = y.real.dtype
    num_cases = y.shape[0]

    def draw(start: int, n: int):
        chunk = spectrum._replace(ybar=case_measurements(spectrum.ybar, num_samples, start, n))

        def step(state: DDRMState, s: int) -> DDRMState:
            new = ddrm_step(state, s, prior=prior, spectrum=chunk, eta=eta, eta_b=eta_b,
                            noise=standard_normal((n, *shape), generator, y))
            return new._replace(x=new.x.to(real))

        x = ddrm_initial(chunk, prior.schedule, ts[0], standard_normal((n, *shape), generator, y))
        state = run_chain(step, DDRMState(x.to(real), ts[0]), nexts, name=name, progress=progress, callback=callback,
                          bound=lambda st: timestep_bound(prior, st.t),
                          detail=lambda old, new: f"timestep {old.t} -> {new.t}")
        return state.x[:, None], {}

    samples, _ = draw_in_chunks(num_cases * num_samples, batch_size, draw)
    settings = {"steps": len(ts), "eta": eta, "eta_b": eta_b, "sigma_0": spectrum.sigma_0,
                "batch_size": batch_size, "schedule": prior.schedule.name}
    return case_posteriors(name, samples, num_cases, settings=settings, nfe=len(ts), clock=clock,
                           generator=generator, problem=problem)
