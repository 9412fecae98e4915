r"""Diffusion posterior sampling (DPS; Chung, Kim, McCann, Klasky, Ye 2023, ICLR).

Algorithm 1 of the paper: at each timestep ``t`` (to the next ``s < t``) of the reverse diffusion

1. ``x0_hat = E[x0 | x_t]`` from the prior's denoiser (Tweedie),
2. the ancestral DDPM step ``x'_s = c_t x_t + c_0 x0_hat + sigma_tilde z`` (``q(x_s | x_t, x0_hat)``, see
   :func:`bayesinv.priors.schedules.ancestral_coefficients`),
3. the measurement step ``x_s = x'_s - zeta' grad_{x_t} ||y - A(x0_hat)||``, the gradient taken
   through the denoiser by autograd.

As in the authors' code (``guided_diffusion/condition_methods.py``, ``PosteriorSampling``) the step uses
the *non-squared* residual norm times ``zeta'`` (``guidance_scale``). Since
``grad ||r|| = grad ||r||^2 / (2 ||r||)``, this is the paper's ``zeta_i grad ||y - A(x0_hat)||^2`` with
``zeta_i = zeta' / (2 ||y - A(x0_hat)||)``, i.e. the paper's ``zeta_i = zeta'/||y - A(x0_hat)||`` up to
the factor 2. Norms are per chain (the authors run one image per batch).

Defaults are the authors' configs (``configs/*_config.yaml``): 1000 DDPM steps, ``zeta' = 0.5`` for
inpainting, ``0.3`` for deblurring and super-resolution, ``1.0`` for phase retrieval (and ``1.0`` for
other operators). For a shipped prior, values chosen on its calibration split by
``benchmarks/tune_dps.py`` replace these (:data:`TUNED_GUIDANCE_SCALES`, looked up by the prior's ``name``).

Likelihoods (``guidance``):

* ``"norm"`` (default for Gaussian noise of known sigma): ``||y - A(x0_hat)||``, as above.
* ``"deviance"`` (default otherwise: Poisson, latent sigma): ``sqrt(2 (log p(y|y) - log p(y|x0_hat)))``,
  the square root of the deviance, read from the model's log-likelihood. For Gaussian noise it is
  ``||y - A(x0_hat)|| / sigma_y``; for Poisson it generalises the authors' weighted norm (which
  divides by ``|y|`` and breaks on zero counts).
* ``"loglik"``: the step ``x_s = x'_s + zeta grad_{x_t} log p(y | x0_hat)`` with a constant ``zeta``
  (the paper's "theoretical" form, eq. 16).

Nuisance latents (blind deblurring, an unknown sigma) are held at values given in ``latents=``
(BlindDPS's joint gradient update of the kernel is not implemented). A user's own Pyro model
(:class:`~bayesinv.model_problem.PyroModelProblem`) has no noise model to saturate: its default is ``"loglik"``.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior, vp_linear
>>> prior = GaussianPrior(torch.zeros(2), 1.0, schedule=vp_linear(50))
>>> problem = InverseProblem(Identity((2,)), Gaussian(0.1), prior)
>>> post = sample_dps(problem, torch.ones(1, 2, dtype=torch.float64), num_samples=4, steps=50,
...                   generator=torch.Generator().manual_seed(0), progress=False)
>>> tuple(post.samples.shape), post.nfe
((4, 1, 2), 50)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from bayesinv._validation import check_number
from bayesinv.operators.base import Operator
from bayesinv.posterior import Posterior
from bayesinv.priors.schedules import ancestral_coefficients, initial_noise, standard_normal, timesteps
from bayesinv.problem import InverseProblem, squared_residual
from bayesinv.samplers._driver import (Clock, case_measurements, case_posteriors, check_inputs, draw_in_chunks,
                                       run_chain, subset_latents, timestep_bound)

__all__ = ["sample_dps", "sample_dps_cases", "dps_step", "DPSState", "default_guidance_scale", "TUNED_GUIDANCE_SCALES"]

_GUIDANCE = ("norm", "deviance", "loglik")


class DPSState(NamedTuple):
    """The iterate ``x`` at timestep ``t`` (``t = -1``: finished) and the last ``x0_hat``."""

    x: torch.Tensor
    t: int
    x0_hat: torch.Tensor | None = None


# zeta' for shipped priors by (number of steps, operator class), chosen on the CALIBRATION split by
# benchmarks/tune_dps.py (rerun it after retraining a prior). phantom32 at 100 steps: `tune_dps.py --quick`
# (1 calibration phantom, 2 chains, grid 0.3/1/3/10; PSNR of the mean 31.2/33.1/34.6 dB; 10 blows up).
# zeta' acts once per step, so a value holds only for the steps it was tuned at.
TUNED_GUIDANCE_SCALES: dict[str, dict[int, dict[str, float]]] = {
    "phantom32": {100: {"Blur": 3.0, "Inpaint": 1.0, "MRI": 3.0}},
}


def default_guidance_scale(operator: Operator | None, prior_name: str | None = None, steps: int | None = None) -> float:
    """``zeta'`` tuned for prior ``prior_name`` at ``steps`` steps (:data:`TUNED_GUIDANCE_SCALES`) if recorded,
    else the authors' value by operator family: inpainting 0.5, blur/super-resolution 0.3, phase 1.0, else 1.0
    (also for a user's Pyro model, which has no operator: ``operator=None``)."""
    tuned = TUNED_GUIDANCE_SCALES.get(prior_name or "", {}).get(steps, {})
    if type(operator).__name__ in tuned:
        return tuned[type(operator).__name__]
    name = type(operator).__name__.lower()
    if "inpaint" in name or "mask" in name:
        return 0.5
    if any(k in name for k in ("blur", "superres", "super_res", "downsampl", "resolution")):
        return 0.3
    return 1.0


def _distance(problem: InverseProblem, y: torch.Tensor, x0_hat: torch.Tensor, latents: Mapping[str, torch.Tensor],
              guidance: str) -> torch.Tensor:
    """Per-chain quantity whose gradient DPS follows (``(B,)``, see module docstring)."""
    if guidance == "norm":
        prediction = problem.chain_operator(latents)(x0_hat)
        return squared_residual(y, prediction).clamp_min(1e-30).sqrt()
    ll = problem.log_likelihood(x0_hat, y, **latents)
    if guidance == "loglik":
        return -ll
    noise_latents = {k: latents[k] for k in problem.noise.latents}
    saturated = problem.noise.log_prob(y.expand(x0_hat.shape[0], *y.shape[1:]),
                                       y.expand(x0_hat.shape[0], *y.shape[1:]), **noise_latents)
    return (2 * (saturated - ll)).clamp_min(1e-30).sqrt()


def dps_step(state: DPSState, s: int, *, problem: InverseProblem, y: torch.Tensor,
             latents: Mapping[str, torch.Tensor], guidance_scale: float, guidance: str, noise: torch.Tensor,
             clip_denoised: tuple[float, float] | None = None) -> DPSState:
    """One DPS step from ``state.t`` to ``s`` with the given standard normal ``noise`` (a pure function)."""
    prior = problem.prior
    coef = ancestral_coefficients(prior.schedule, state.t, s)
    with torch.enable_grad():
        x_t = state.x.detach().requires_grad_(True)
        x0_hat = prior.denoise(x_t, state.t)
        if clip_denoised is not None:
            x0_hat = x0_hat.clamp(*clip_denoised)
        dist = _distance(problem, y, x0_hat, latents, guidance)
        (grad,) = torch.autograd.grad(dist.sum(), x_t)
    x0_hat = x0_hat.detach()
    x_prime = coef.coef_xt * state.x + coef.coef_x0 * x0_hat + math.sqrt(coef.variance) * noise
    return DPSState(x_prime - guidance_scale * grad, s, x0_hat)


def sample_dps(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None = None,
               generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
               callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
               guidance_scale: float | None = None, guidance: str | None = None,
               latents: Mapping[str, Any] | None = None,
               clip_denoised: tuple[float, float] | None = None) -> Posterior:
    """Draw ``num_samples`` independent DPS samples (Chung et al. 2023, Algorithm 1; see module docstring).

    Parameters
    ----------
    problem : an :class:`~bayesinv.problem.InverseProblem` whose prior is a ScorePrior.
    y : the measurement, ``out_shape`` or ``(1, *out_shape)`` (complex for MRI).
    num_samples : number of independent chains (posterior samples).
    steps : number of reverse steps (evenly spaced timesteps; default: all, 1000 in the paper).
    generator : the source of randomness.
    batch_size : chains per batch (default: all at once).
    progress : show a tqdm bar. callback : ``callback(step, x_t, x0_hat)`` after every step.
    guidance_scale : ``zeta'`` (default :func:`default_guidance_scale` of the operator and the prior's name).
    guidance : ``"norm"``, ``"deviance"`` or ``"loglik"`` (default: norm for known-sigma Gaussian noise).
    latents : fixed values of latent sites (noise sigma, operator nuisance), scalars or ``(num_samples,)``.
    clip_denoised : clamp ``x0_hat`` to this range (the authors clip to the data range ``[-1, 1]``).

    Returns
    -------
    Posterior with samples ``(num_samples, 1, *event_shape)``; ``nfe = steps`` (each with a backward pass).
    """
    return _dps(problem, y, cases=False, num_samples=num_samples, steps=steps, generator=generator,
                batch_size=batch_size, progress=progress, callback=callback, guidance_scale=guidance_scale,
                guidance=guidance, latents=latents, clip_denoised=clip_denoised)[0]


def sample_dps_cases(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int | None = None,
                     generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                     callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
                     guidance_scale: float | None = None, guidance: str | None = None,
                     latents: Mapping[str, Any] | None = None,
                     clip_denoised: tuple[float, float] | None = None) -> list[Posterior]:
    """:func:`sample_dps` for ``G`` measurements of one problem at once: ``y: (G, *out_shape)``.

    DPS's chains are independent given ``y``: the ``G * num_samples`` chains (case-major) run as one batch, each
    guided by its own case's measurement, so every step makes one network call (and one backward pass) for all
    cases; ``batch_size`` bounds the chains per call. ``latents`` are per case (scalars or ``(num_samples,)``).
    Returns one Posterior per case with ``wall_time`` the call's time over ``G``; with ``G = 1`` the draws are
    those of :func:`sample_dps` bit for bit.
    """
    return _dps(problem, y, cases=True, num_samples=num_samples, steps=steps, generator=generator,
                batch_size=batch_size, progress=progress, callback=callback, guidance_scale=guidance_scale,
                guidance=guidance, latents=latents, clip_denoised=clip_denoised)


def _dps(problem: InverseProblem, y: torch.Tensor, *, cases: bool, num_samples: int, steps: int | None,
         generator: torch.Generator, batch_size: int | None, progress: bool, callback,
         guidance_scale: float | None, guidance: str | None, latents: Mapping[str, Any] | None,
         clip_denoised: tuple[float, float] | None) -> list[Posterior]:
    name = "dps"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                     bounded_by_schedule=True, cases=cases)
    num_cases = y.shape[0]
    model_problem = problem.noise is None  # a user's Pyro model: no noise model to saturate
    if guidance is None:
        guidance = "norm" if problem.known_gaussian_noise else ("loglik" if model_problem else "deviance")
    if guidance not in _GUIDANCE:
        raise ValueError(f"{name}: guidance must be one of {_GUIDANCE}, got {guidance!r}")
    if model_problem and guidance != "loglik":
        raise ValueError(f"{name}: a Pyro model problem supports guidance='loglik' only, got {guidance!r}")
    if guidance_scale is not None:
        guidance_scale = check_number("guidance_scale", guidance_scale, low=0.0, high=float("inf"), owner=name)
    if clip_denoised is not None:
        if len(clip_denoised) != 2 or not float(clip_denoised[0]) < float(clip_denoised[1]):
            raise ValueError(f"{name}: clip_denoised must be (low, high) with low < high, got {clip_denoised!r}")
        clip_denoised = (float(clip_denoised[0]), float(clip_denoised[1]))
    all_latents = problem.resolve_latents(latents, num_samples, y)
    prior = problem.prior
    ts = timesteps(prior.schedule, steps)
    if guidance_scale is None:
        operator = None if model_problem else problem.chain_operator(all_latents)
        guidance_scale = default_guidance_scale(operator, getattr(prior, "name", None), len(ts))
    nexts = ts[1:] + [-1]
    clock = Clock()
    shape = tuple(prior.event_shape)
    schedule = prior.schedule
    chain_latents = {k: v.repeat(num_cases) for k, v in all_latents.items()} if num_cases > 1 else all_latents

    def draw(start: int, n: int):
        chunk_latents = subset_latents(chain_latents, slice(start, start + n))
        chunk_y = case_measurements(y, num_samples, start, n)

        def step(state: DPSState, s: int) -> DPSState:
            return dps_step(state, s, problem=problem, y=chunk_y, latents=chunk_latents,
                            guidance_scale=guidance_scale, guidance=guidance,
                            noise=standard_normal((n, *shape), generator, y),
                            clip_denoised=clip_denoised)

        state = DPSState(initial_noise(schedule, (n, *shape), generator, y), ts[0])
        state = run_chain(step, state, nexts, name=name, progress=progress, callback=callback,
                          bound=lambda st: timestep_bound(prior, st.t),
                          detail=lambda old, new: f"timestep {old.t} -> {new.t}")
        return state.x[:, None], {}

    samples, _ = draw_in_chunks(num_cases * num_samples, batch_size, draw)
    settings = {"steps": len(ts), "guidance_scale": guidance_scale, "guidance": guidance,
                "clip_denoised": clip_denoised, "batch_size": batch_size, "schedule": schedule.name,
                "latents": {k: v[:1] for k, v in all_latents.items()}}
    return case_posteriors(name, samples, num_cases, settings=settings, nfe=len(ts), clock=clock,
                           generator=generator, problem=problem)

