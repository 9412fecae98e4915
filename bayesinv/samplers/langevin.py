r"""The Langevin family: (PnP-)ULA and MALA, and the pieces annealed Langevin (:mod:`.annealed_langevin`) shares.

All work on the data scale ``x`` (for a diffusion prior at timestep ``t`` the noisy data-scale image
is ``x_t / alpha_t`` with noise level ``gamma_t = sigma_t / alpha_t``, and its score is
``alpha_t score(alpha_t x, t) = (E[x0 | alpha_t x] - x) / gamma_t^2``).

* **ULA / PnP-ULA** (Laumont, De Bortoli, Almansa, Delon, Durmus, Pereyra 2022, SIAM J. Imaging Sci.):
  at one small noise level ``gamma`` (``eps = gamma^2``),
  ``x <- x + delta grad log p(y|x) + (alpha delta / eps)(D_eps(x) - x) + (delta / lambda)(Pi_C(x) - x)
  + sqrt(2 delta) z`` with ``Pi_C`` the projection on the box ``C`` (PnP-ULA; ULA has no projection).
  Default step ``delta = 1 / (3 (L_y + alpha / eps + 1 / lambda))`` with ``L_y = ||A||^2 / sigma_y^2``
  (their condition ``delta < 1/3 L^-1`` for a 1-Lipschitz denoiser residual); ``gamma = 5/255``.
* **MALA** (Roberts & Tweedie 1996): the ULA proposal on the exact log-posterior
  ``log p(x) + log p(y|x)`` (priors with an explicit ``log_prob`` only), accepted with the
  Metropolis-Hastings probability; asymptotically exact. The step size is adapted per chain during
  burn-in toward acceptance 0.574 (Roberts & Rosenthal 1998), then frozen.

MCMC samplers run ``num_samples`` chains for ``steps`` iterations and keep the last ``num_draws``
states every ``thin`` iterations: samples ``(num_samples, num_draws, *event_shape)``.

>>> import torch
>>> from bayesinv import Gaussian, InverseProblem
>>> from bayesinv.operators import Identity
>>> from bayesinv.priors import GaussianPrior
>>> problem = InverseProblem(Identity((2,)), Gaussian(0.5), GaussianPrior(torch.zeros(2), 1.0))
>>> post = sample_mala(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=3, steps=20,
...                    num_draws=2, generator=torch.Generator().manual_seed(0), progress=False)
>>> tuple(post.samples.shape), 0 <= post.extras["acceptance_rate"] <= 1
((3, 2, 2), True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from pyro.distributions import TorchDistribution

from bayesinv._validation import check_number
from bayesinv.errors import NoDensityError
from bayesinv.operators.base import LinearOperator, operator_norm_squared
from bayesinv.posterior import Posterior
from bayesinv.priors.base import ScorePrior
from bayesinv.priors.schedules import standard_normal
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import (Clock, check_inputs, divergence_bound, draw_in_chunks, make_posterior,
                                       run_chain, subset_latents)

__all__ = ["sample_ula", "sample_pnp_ula", "sample_mala", "LangevinState",
           "langevin_step", "mala_step", "data_scale_score"]


class LangevinState(NamedTuple):
    """Chains ``x``, per-chain step sizes ``step_size`` and accepted-move counts (MALA)."""

    x: torch.Tensor
    step_size: torch.Tensor
    accepted: torch.Tensor


def data_scale_score(prior, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D(x), s(x))``: denoiser and score of the data-scale noisy prior at timestep ``t`` (module docstring)."""
    alpha, sigma = float(prior.schedule.alpha[t]), float(prior.schedule.sigma[t])
    denoised = prior.denoise(alpha * x, t)
    return denoised, (denoised - x) / (sigma / alpha) ** 2


def _bshape(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def langevin_step(state: LangevinState, drift: torch.Tensor, noise: torch.Tensor) -> LangevinState:
    """``x <- x + delta drift + sqrt(2 delta) z`` (per-chain ``delta``)."""
    delta = _bshape(state.step_size, state.x)
    return state._replace(x=state.x + delta * drift + (2 * delta).sqrt() * noise)


def _likelihood_grad(problem, x, y, latents, inflation: float = 0.0, mode: str = "jalal") -> torch.Tensor:
    """``grad log p(y|x)``; for Gaussian noise with the variance inflated by ``inflation`` (module docstring),
    read from :meth:`InverseProblem.inflated_log_likelihood` (``"jalal"``: isotropic, ``"operator"``: the SVD
    basis); other noise, or ``mode="none"``, uses the exact likelihood."""
    if problem.gaussian_noise_std(latents) is None or inflation == 0.0 or mode == "none":
        return problem.grad_log_likelihood(x, y, **latents)[1]
    covariance = "operator" if mode == "operator" else "isotropic"
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        value = problem.inflated_log_likelihood(xg, y, inflation, covariance=covariance, **latents)
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return grad


def _min_float(value: torch.Tensor | float) -> float:
    """The smallest value of a per-chain tensor, or the float itself."""
    return float(value.min()) if isinstance(value, torch.Tensor) else float(value)


def _likelihood_lipschitz(problem, y, latents, generator) -> float | None:
    sigma = problem.gaussian_noise_std(latents)
    if sigma is None:
        return None
    op = problem.chain_operator(latents)
    if not isinstance(op, LinearOperator):
        return None
    sigma_min = _min_float(sigma)
    return operator_norm_squared(op, y, generator=generator) / sigma_min**2


def _initial(problem, y, init, start, n, generator) -> torch.Tensor:
    shape = tuple(problem.prior.event_shape)
    dtype = y.real.dtype if y.is_complex() else y.dtype
    if init is not None:
        return init[start:start + n].to(dtype=dtype, device=y.device).clone()
    prior = problem.prior
    analytic = prior.explicit_variance is not None if isinstance(prior, ScorePrior) else \
        getattr(type(prior), "sample_n", None) is not TorchDistribution.sample_n
    if analytic:  # a prior draw; a network prior's draw would run a whole reverse diffusion: start at zero
        return prior.sample_n(n, generator=generator).to(dtype=dtype, device=y.device)
    return torch.zeros((n, *shape), dtype=dtype, device=y.device)


def _check_init(init, num_samples, shape):
    if init is None:
        return None
    if not isinstance(init, torch.Tensor) or tuple(init.shape) != (num_samples, *shape):
        raise ValueError(f"init must be a tensor of shape ({num_samples}, {', '.join(map(str, shape))}), "
                         f"got {tuple(getattr(init, 'shape', ()))}")
    return init


def _keep_schedule(steps: int, num_draws: int, thin: int) -> set[int]:
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (num_draws, thin))
    burn_in = steps - num_draws * thin if ints else -1
    if not ints or num_draws < 1 or thin < 1 or burn_in < 0:
        raise ValueError(f"need num_draws >= 1, thin >= 1 and num_draws * thin <= steps; got num_draws={num_draws}, "
                         f"thin={thin}, steps={steps}")
    return {burn_in + (k + 1) * thin - 1 for k in range(num_draws)}


def _run_chains(name, problem, y, *, num_samples, steps, generator, batch_size, progress, callback, init,
                num_draws, thin, step_size, update):
    """The MCMC chains of ULA/PnP-ULA/MALA: ``update(state, i, start, n) -> (state, x0_hat)`` per iteration, run
    by the driver; the states of the iterations in the keep schedule are stored."""
    keep = _keep_schedule(steps, num_draws, thin)
    clock = Clock()
    accept = []
    bound = divergence_bound(problem.prior)

    def draw(start, n):
        x = _initial(problem, y, init, start, n, generator)
        state = _MCMCState(x, torch.full((n,), float(step_size), dtype=x.dtype, device=x.device),
                           torch.zeros(n, dtype=x.dtype, device=x.device), None)
        kept = []

        def step(state: _MCMCState, i: int) -> _MCMCState:
            new, x0_hat = update(LangevinState(state.x, state.step_size, state.accepted), i, start, n)
            return _MCMCState(*new, x0_hat)

        def store(i: int, state: _MCMCState) -> None:
            if i in keep:
                kept.append(state.x.detach().clone())

        state = run_chain(step, state, range(steps), name=name, progress=progress, callback=callback,
                          bound=lambda st: bound, on_step=store)
        accept.append(state.accepted)
        return torch.stack(kept, 1), {"step_size": state.step_size}

    samples, extras = draw_in_chunks(num_samples, batch_size, draw)
    step_sizes = torch.cat([e["step_size"] for e in extras])
    return samples, clock, torch.cat(accept), step_sizes


class _MCMCState(NamedTuple):
    """:class:`LangevinState` with the denoiser's output of the last step (for the callback)."""

    x: torch.Tensor
    step_size: torch.Tensor
    accepted: torch.Tensor
    x0_hat: torch.Tensor | None


def sample_pnp_ula(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int = 1000,
                   generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                   callback: Callable | None = None, noise_level: float = 5 / 255, step_size: float | None = None,
                   regularization: float = 1.0, box: tuple[float, float] | None = (-1.0, 2.0),
                   box_weight: float | None = None, init: torch.Tensor | None = None, num_draws: int = 1,
                   thin: int = 1, latents: Mapping[str, Any] | None = None) -> Posterior:
    """PnP-ULA (Laumont et al. 2022; module docstring): ``num_samples`` chains of ``steps`` iterations.

    ``noise_level`` is the denoiser's ``gamma`` (``eps = gamma^2``; snapped to the nearest timestep),
    ``regularization`` is ``alpha``, ``box = (low, high)`` the convex set ``C`` (``None``: plain ULA) with
    ``box_weight = lambda`` (default ``1 / (L_y + alpha / eps)``). ``init``: ``(num_samples, *event)``
    starting states (default: prior draws for analytic priors, else zeros).
    """
    name = "pnp_ula" if box is not None else "ula"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator)
    shape = tuple(problem.prior.event_shape)
    init = _check_init(init, num_samples, shape)
    _keep_schedule(steps, num_draws, thin)
    noise_level = check_number("noise_level", noise_level, low=0.0, low_open=True, high=float("inf"), owner=name)
    regularization = check_number("regularization", regularization, low=0.0, high=float("inf"), owner=name)
    if step_size is not None:
        step_size = check_number("step_size", step_size, low=0.0, low_open=True, high=float("inf"), owner=name)
    if box is not None:
        if len(box) != 2 or not float(box[0]) < float(box[1]):
            raise ValueError(f"{name}: box must be (low, high) with low < high, or None; got {box!r}")
        box = (float(box[0]), float(box[1]))
        if box_weight is not None:
            box_weight = check_number("box_weight", box_weight, low=0.0, low_open=True, high=float("inf"),
                                      owner=name)
    schedule, prior = problem.prior.schedule, problem.prior
    t = schedule.timestep_for_noise_level(noise_level)
    gamma = float(schedule.noise_level(t))
    eps = gamma**2
    all_latents = problem.resolve_latents(latents, num_samples, y)
    lip_y = _likelihood_lipschitz(problem, y, all_latents, generator)
    lip = (lip_y if lip_y is not None else 0.0) + regularization / eps
    if box is not None and box_weight is None:
        box_weight = 1.0 / lip
    if step_size is None:
        if lip_y is None:
            raise ValueError(f"{name}: pass step_size= (the likelihood's Lipschitz constant is unknown here)")
        step_size = 1.0 / (3 * (lip + (1.0 / box_weight if box is not None else 0.0)))

    def update(state, i, start, n):
        chunk_latents = subset_latents(all_latents, slice(start, start + n))
        denoised, _ = data_scale_score(prior, state.x, t)
        drift = _likelihood_grad(problem, state.x, y, chunk_latents) + regularization / eps * (denoised - state.x)
        if box is not None:
            drift = drift + (state.x.clamp(*box) - state.x) / box_weight
        return langevin_step(state, drift, standard_normal(state.x.shape, generator, y)), denoised

    samples, clock, _, _ = _run_chains(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                                       batch_size=batch_size, progress=progress, callback=callback, init=init,
                                       num_draws=num_draws, thin=thin, step_size=step_size, update=update)
    settings = {"steps": steps, "noise_level": gamma, "step_size": step_size, "regularization": regularization,
                "box": box, "box_weight": box_weight, "num_draws": num_draws, "thin": thin, "batch_size": batch_size}
    return make_posterior(name, samples, settings=settings, nfe=steps, clock=clock, generator=generator,
                            problem=problem)


def sample_ula(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int = 1000,
               generator: torch.Generator, **options) -> Posterior:
    """ULA with the prior score from the denoiser at a small noise level: :func:`sample_pnp_ula` with ``box=None``."""
    options.setdefault("box", None)
    return sample_pnp_ula(problem, y, num_samples=num_samples, steps=steps, generator=generator, **options)


def _uniform(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).to(like)


def _log_posterior(problem, x, y, latents) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        try:
            log_prior = problem.prior.log_prob(xg)
        except (NoDensityError, NotImplementedError) as err:
            raise NoDensityError(f"mala needs a prior with an explicit log_prob (analytic priors); "
                                 f"{type(problem.prior).__name__} has none: use sample_pnp_ula") from err
        value = log_prior + problem.log_likelihood(xg, y, **latents)
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return value.detach(), grad


def mala_step(state: LangevinState, log_target: Callable, noise: torch.Tensor, uniform: torch.Tensor,
              current: tuple[torch.Tensor, torch.Tensor]) -> tuple[LangevinState, tuple, torch.Tensor]:
    """One MALA step; ``current = (log pi(x), grad log pi(x))``. Returns the state, new ``current``, acceptances."""
    x, (lp, grad) = state.x, current
    delta = _bshape(state.step_size, x)
    prop = x + delta * grad + (2 * delta).sqrt() * noise
    lp_prop, grad_prop = log_target(prop)

    def log_q(to, frm, grad_from):  # log N(to; frm + delta grad, 2 delta I), constants dropped
        diff = (to - frm - delta * grad_from).reshape(x.shape[0], -1)
        return -(diff**2).sum(1) / (4 * state.step_size)

    log_ratio = lp_prop - lp + log_q(x, prop, grad_prop) - log_q(prop, x, grad)
    ok = torch.log(uniform) < log_ratio
    okb = _bshape(ok, x)
    new_x = torch.where(okb, prop, x)
    new_current = (torch.where(ok, lp_prop, lp), torch.where(okb, grad_prop, grad))
    accept_prob = log_ratio.clamp(max=0).exp()
    return state._replace(x=new_x, accepted=state.accepted + ok.to(x.dtype)), new_current, accept_prob


def sample_mala(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, steps: int = 1000,
                generator: torch.Generator, batch_size: int | None = None, progress: bool = True,
                callback: Callable | None = None, step_size: float | None = None, adapt: bool = True,
                target_acceptance: float = 0.574, init: torch.Tensor | None = None, num_draws: int = 1,
                thin: int = 1, latents: Mapping[str, Any] | None = None) -> Posterior:
    """MALA on the exact log-posterior (module docstring): ``num_samples`` chains of ``steps`` iterations.

    With ``adapt`` the per-chain step size is tuned toward ``target_acceptance`` during the first half
    of the burn-in (``steps - num_draws * thin`` iterations) and frozen afterwards; ``extras`` holds the
    acceptance rate over the frozen iterations and the median final step size.
    """
    name = "mala"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                     need_score_prior=False)
    if problem.prior is None:
        raise ValueError("mala: the problem has no prior")
    shape = tuple(problem.prior.event_shape)
    init = _check_init(init, num_samples, shape)
    _keep_schedule(steps, num_draws, thin)
    if step_size is not None:
        step_size = check_number("step_size", step_size, low=0.0, low_open=True, high=float("inf"), owner=name)
    target_acceptance = check_number("target_acceptance", target_acceptance, low=0.0, high=1.0, low_open=True,
                                     high_open=True, owner=name)
    all_latents = problem.resolve_latents(latents, num_samples, y)
    probe = torch.zeros((1, *shape), dtype=y.real.dtype, device=y.device)
    _log_posterior(problem, probe, y, subset_latents(all_latents, slice(0, 1)))  # fails early without a density
    if step_size is None:
        lip_y = _likelihood_lipschitz(problem, y, all_latents, generator)
        step_size = 0.5 / (1.0 + (lip_y or 0.0))
    burn_in = steps - num_draws * thin
    adapt_steps = burn_in // 2 if adapt else 0
    cache: dict[int, tuple] = {}
    accepted_after = {}

    def update(state, i, start, n):
        chunk_latents = subset_latents(all_latents, slice(start, start + n))

        def log_target(x):
            return _log_posterior(problem, x, y, chunk_latents)

        if i == 0:
            cache[start] = log_target(state.x)
            accepted_after[start] = torch.zeros(n, dtype=state.x.dtype, device=state.x.device)
        new, cache[start], prob = mala_step(state, log_target, standard_normal(state.x.shape, generator, y),
                                            _uniform(n, generator, state.x), cache[start])
        if i < adapt_steps:  # Robbins-Monro on the log step size, per chain; frozen afterwards
            gain = 1.0 / (i + 1) ** 0.6
            new = new._replace(step_size=new.step_size * torch.exp(gain * (prob - target_acceptance)).to(new.step_size))
        else:
            accepted_after[start] += (new.accepted - state.accepted)
        return new, None

    samples, clock, _, step_sizes = _run_chains(
        name, problem, y, num_samples=num_samples, steps=steps, generator=generator, batch_size=batch_size,
        progress=progress, callback=callback, init=init, num_draws=num_draws, thin=thin, step_size=step_size,
        update=update)
    rate = float(torch.cat(list(accepted_after.values())).sum()) / (num_samples * max(steps - adapt_steps, 1))
    settings = {"steps": steps, "step_size": step_size, "adapt": adapt, "target_acceptance": target_acceptance,
                "num_draws": num_draws, "thin": thin, "batch_size": batch_size}
    extras = {"acceptance_rate": rate, "final_step_size_median": float(step_sizes.median())}
    return make_posterior(name, samples, settings=settings, nfe=steps, clock=clock, generator=generator,
                            problem=problem, extras=extras)
