"""Images and a few scalar latents sampled jointly: Gibbs sweeps over ``x`` and each latent in turn.

Problems with an unknown noise level (``Gaussian(sigma=dist.…)``) or a blind operator (``nuisance=`` latents
such as a blur width) have a joint posterior ``p(x, theta | y)``. A Gibbs sweep draws

* ``x ~ p(x | theta, y)`` with any image sampler of :data:`~bayesinv.samplers.SAMPLERS` (or a callable),
  the latents held fixed per chain (every sampler takes ``latents=``), and then
* each scalar latent ``theta_j ~ p(theta_j | x, theta_-j, y)`` **exactly on a grid**:
  ``p(theta_j = g_k | ...) ∝ p(g_k) p(y | x, theta_-j, theta_j = g_k)``, the likelihood read from the model
  by :meth:`~bayesinv.problem.InverseProblem.log_likelihood`; the draw is an inverse-CDF draw on the grid.

With an exact ``x``-step (e.g. the exact posterior of a Gaussian prior) this is an exact Gibbs sampler of the
grid-discretised joint posterior (Geman & Geman 1984); with a diffusion sampler the ``x``-step inherits that
sampler's approximation (a "Gibbs-within-DPS" scheme in the spirit of BlindDPS, Chung et al. 2023).

The returned :class:`~bayesinv.posterior.Posterior` holds the ``x`` draws of the sweeps after ``burn_in``
(``(num_samples, sweeps - burn_in, *event)``) and, in ``extras["latents"]``, the latent draws of the same
sweeps (``{name: (num_samples, sweeps - burn_in)}`` lists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import pyro.distributions as dist
import torch

from bayesinv.errors import ShapeError
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv._validation import check_step
from bayesinv.samplers._driver import Clock, check_inputs, make_posterior, run_chain

__all__ = ["sample_gibbs", "latent_grid", "latent_conditional_step", "GibbsState"]

XStep = Callable[[InverseProblem, torch.Tensor, dict[str, torch.Tensor], torch.Generator], torch.Tensor]


def latent_grid(prior: dist.Distribution, num: int = 64, *, tail: float = 1e-3) -> torch.Tensor:
    """A 1-D grid covering a scalar latent's prior: uniform over a bounded support, prior quantiles otherwise."""
    support = getattr(prior, "support", None)
    low, high = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
    if isinstance(prior, dist.Uniform):
        low, high = float(prior.low), float(prior.high)
        step = (high - low) / num
        return torch.linspace(low + step / 2, high - step / 2, num, dtype=torch.float64, device="cpu")
    try:
        q = torch.linspace(tail, 1 - tail, num, dtype=torch.float64, device="cpu")
        return prior.icdf(q.to(prior.mean.dtype)).to(torch.float64)
    except (NotImplementedError, AttributeError) as exc:
        raise ValueError(f"no default grid for a {type(prior).__name__} prior (support {low}..{high}): "
                         "pass latent_grids={name: 1-D tensor}") from exc


def latent_conditional_step(problem: InverseProblem, y: torch.Tensor, x: torch.Tensor, latents: dict[str, torch.Tensor],
                            name: str, grid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Draw ``theta_name ~ p(theta_name | x, other latents, y)`` per chain, exactly on ``grid``: ``(B,)``."""
    prior = problem.latent_priors[name]
    b, g = x.shape[0], grid.shape[0]
    dtype = x.real.dtype if x.is_complex() else x.dtype
    grid = grid.to(dtype=dtype, device=x.device)
    x_rep = x.repeat_interleave(g, dim=0)
    lat = {k: v.repeat_interleave(g) for k, v in latents.items()}
    lat[name] = grid.repeat(b)
    with torch.no_grad():
        log_lik = problem.log_likelihood(x_rep, y, **lat).reshape(b, g)
        log_prior = prior.log_prob(grid.to(prior.mean.dtype)).to(dtype)
    log_post = log_lik + log_prior
    check_step("gibbs", 0, log_post.logsumexp(1), detail=f"the conditional of latent {name!r} is degenerate")
    cdf = torch.softmax(log_post.to(torch.float64), 1).cumsum(1)
    u = torch.rand(b, 1, generator=generator, dtype=torch.float64, device=generator.device).to(cdf.device)
    return grid[torch.searchsorted(cdf / cdf[:, -1:], u).clamp(max=g - 1)[:, 0]]


class GibbsState(NamedTuple):
    """The images ``x`` ``(num_samples, *event)`` of the last sweep and the latent values ``{name: (num_samples,)}``."""

    x: torch.Tensor
    latents: dict[str, torch.Tensor]


def _x_step(sampler: str | XStep, options: Mapping[str, Any]) -> XStep:
    if callable(sampler):
        return sampler
    from bayesinv.samplers.registry import SAMPLERS

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown x_sampler {sampler!r}; choose one of {sorted(SAMPLERS)} or pass a callable")

    def step(problem, y, latents, generator):
        n = next(iter(latents.values())).shape[0]
        post = SAMPLERS[sampler](problem, y, num_samples=n, generator=generator, progress=False, latents=latents,
                                 **options)
        return post.samples[:, -1]

    return step


def sample_gibbs(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, generator: torch.Generator,
                 sweeps: int = 6, burn_in: int = 2, x_sampler: str | XStep = "dps",
                 x_options: Mapping[str, Any] | None = None, latent_grids: Mapping[str, torch.Tensor] | None = None,
                 init: Mapping[str, Any] | None = None, progress: bool = True,
                 callback: Callable[[int, torch.Tensor, dict[str, torch.Tensor]], None] | None = None) -> Posterior:
    """Joint samples of ``x`` and the problem's scalar latents by Gibbs sweeps (see module docstring).

    Parameters
    ----------
    problem : an :class:`~bayesinv.problem.InverseProblem` with at least one latent (noise or nuisance).
    y : the measurement. num_samples : independent chains. generator : the source of randomness.
    sweeps, burn_in : Gibbs sweeps, and how many of the first ones are discarded.
    x_sampler : a name in :data:`~bayesinv.samplers.SAMPLERS` (run with ``x_options``) or a callable
        ``(problem, y, latents, generator) -> x (num_samples, *event)``.
    latent_grids : ``{name: 1-D grid}``; default :func:`latent_grid` of each latent's prior (64 points).
    init : initial latent values (default: the prior medians, or means where there is no ``icdf``).
    callback : ``callback(sweep, x, latents)`` after every sweep.

    >>> import torch, pyro.distributions as dist
    >>> from bayesinv import Gaussian, InverseProblem
    >>> from bayesinv.operators import Identity
    >>> from bayesinv.priors import GaussianPrior
    >>> problem = InverseProblem(Identity((2,)), Gaussian(dist.Uniform(0.1, 1.0)),
    ...                          GaussianPrior(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)))
    >>> exact = lambda p, y, lat, g: torch.randn(lat["sigma"].shape[0], 2, generator=g, dtype=torch.float64)
    >>> post = sample_gibbs(problem, torch.zeros(1, 2, dtype=torch.float64), num_samples=3, sweeps=3, burn_in=1,
    ...                     x_sampler=exact, generator=torch.Generator().manual_seed(0), progress=False)
    >>> tuple(post.samples.shape), len(post.extras["latents"]["sigma"][0])
    ((3, 2, 2), 2)
    """
    names = problem.latent_names
    if not names:
        raise ValueError("sample_gibbs needs a problem with latents (Gaussian(sigma=dist...) or nuisance=...); "
                         "use an image sampler directly otherwise")
    if not isinstance(sweeps, int) or not isinstance(burn_in, int) or not 0 <= burn_in < sweeps:
        raise ValueError(f"need integers 0 <= burn_in < sweeps, got burn_in={burn_in!r}, sweeps={sweeps!r}")
    y = check_inputs("gibbs", problem, y, num_samples=num_samples, steps=None, generator=generator)
    priors = problem.latent_priors
    grids = {k: torch.as_tensor(v, dtype=torch.float64).reshape(-1) for k, v in (latent_grids or {}).items()}
    unknown = sorted(set(grids) - set(names))
    if unknown:
        raise ValueError(f"latent_grids names {unknown} are not latents of this problem (it has {names})")
    for k in names:
        grids.setdefault(k, latent_grid(priors[k]))
        if grids[k].ndim != 1 or grids[k].numel() < 2:
            raise ShapeError(f"latent_grids[{k!r}] must be a 1-D grid of at least 2 points")
    start = {}
    for k in names:
        if init is not None and k in init:
            start[k] = init[k]
        else:
            try:
                start[k] = priors[k].icdf(torch.tensor(0.5, dtype=priors[k].mean.dtype, device=priors[k].mean.device))
            except NotImplementedError:
                start[k] = priors[k].mean
    latents = problem.resolve_latents(start, num_samples, y)
    x_step = _x_step(x_sampler, dict(x_options or {}))
    kept_x, kept_latents = [], {k: [] for k in names}
    clock = Clock()
    expected = (num_samples, *problem.in_shape)

    def sweep_step(state: GibbsState, sweep: int) -> GibbsState:
        x = x_step(problem, y, state.latents, generator)
        if tuple(x.shape) != expected:
            raise ShapeError(f"the x-step returned shape {tuple(x.shape)}, expected {expected}")
        check_step("gibbs", sweep, x)
        latents = dict(state.latents)
        for k in names:
            latents[k] = latent_conditional_step(problem, y, x, latents, k, grids[k], generator)
        return GibbsState(x, latents)

    def keep(sweep: int, state: GibbsState) -> None:
        if sweep >= burn_in:
            kept_x.append(state.x.detach())
            for k in names:
                kept_latents[k].append(state.latents[k].detach())

    first = torch.zeros((num_samples, *problem.in_shape), dtype=y.real.dtype, device=y.device)
    run_chain(sweep_step, GibbsState(first, latents), range(sweeps), name="gibbs", progress=progress,
              estimate=lambda st: dict(st.latents), callback=callback, on_step=keep)
    samples = torch.stack(kept_x, 1)
    settings = {"sweeps": sweeps, "burn_in": burn_in, "x_sampler": x_sampler if isinstance(x_sampler, str) else "callable",
                "x_options": dict(x_options or {}), "grid_sizes": {k: int(v.numel()) for k, v in grids.items()}}
    extras = {"latents": {k: torch.stack(v, 1).tolist() for k, v in kept_latents.items()}}
    return make_posterior("gibbs", samples, problem=problem, settings=settings, nfe=0, clock=clock,
                          generator=generator, extras=extras)
