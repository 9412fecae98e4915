r"""Isotropic total-variation reconstruction by FISTA (inner dual projections) or Chambolle–Pock.

.. math::  \min_x P(x) = \tfrac12 \|A x - y\|^2 + \lambda\, \mathrm{TV}(x), \qquad
           \mathrm{TV}(x) = \sum_{c,i,j} \sqrt{|(D_h x)_{cij}|^2 + |(D_v x)_{cij}|^2},

with forward differences ``D`` (zero across the last row/column: Neumann boundary), per channel,
for real or complex images (complex TV uses the modulus).

Algorithms
----------
* ``"fista"`` (Beck & Teboulle 2009, *Fast gradient-based algorithms for constrained total variation
  image denoising and deblurring*): accelerated proximal gradient on the data term with step ``1/L``,
  ``L = ||A||^2``; the TV prox ``prox_{mu TV}(v) = v - mu D^T p`` is computed by the fast gradient
  projection (FGP) on the dual ``p`` (``|p_ij| <= 1``), warm-started across outer iterations.
* ``"chambolle_pock"`` (Chambolle & Pock 2011, Algorithm 1 with ``theta = 1``) on ``K = [A; D]``,
  ``F(Kx) = 0.5||Ax - y||^2 + lambda ||Dx||_{2,1}``, ``G = 0``, steps ``tau = sigma = 0.99 / ||K||``:
  ``q <- (q + s(A xbar - y)) / (1 + s)``, ``p <- proj_lambda(p + s D xbar)``,
  ``x+ = x - t(A^H q + D^T p)``, ``xbar = 2 x+ - x``. It needs only ``A`` and ``A^H``.

Stopping: relative change ``||x_k - x_{k-1}|| / ||x_k|| < tol`` *and* a relative primal–dual gap below
``gap_tol``; both are reported. The gap (:func:`tv_gap`) is the Fenchel gap of the problem restricted
to the box ``||x||_inf <= R`` with ``R = ||x_k||_inf``: for any dual field ``|p| <= lambda`` and
``q = A x - y``, ``r = A^H q + D^T p``,
``gap = P(x) - D(q, p) = Re<q, A x> + lambda TV(x) + R ||r||_1 >= P(x) - min_{||z||_inf <= R} P(z)``
(``D`` the Fenchel dual with ``G`` the indicator of the box, ``G^*(w) = R ||w||_1``),
zero exactly at a minimiser (``r = 0`` is its optimality condition ``0 in A^H(Ax - y) + lambda d TV(x)``).

Default weight: ``lambda = sigma_y^2 * rate`` — the MAP weight of the TV prior
``p(x) ∝ exp(-rate TV(x))`` under Gaussian noise; ``rate = n / E[TV(x)]`` is the maximum-likelihood rate of
that (1-homogeneous) prior for images of ``n`` pixels, fitted on 1000 training phantoms (32x32:
``TV_RATE_PHANTOM32``, see ``benchmarks/baselines.py --fit-rates``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from bayesinv.errors import ShapeError
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import progress_bar
from bayesinv.samplers.baselines._shared import (check_iterate, flatten_norm, lipschitz, norm_squared,
                                                 point_posterior, prepare)

__all__ = ["tv", "tv_fista", "tv_chambolle_pock", "tv_gap", "total_variation", "gradient", "divergence",
           "prox_tv", "TVResult", "TV_RATE_PHANTOM32"]

#: n / E[TV(x)] on 32x32 training phantoms (benchmarks/baselines.py --fit-rates)
TV_RATE_PHANTOM32 = 20.2


def gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences ``D x``: ``(B, C, H, W) -> (B, 2, C, H, W)`` (vertical, horizontal), zero at the far edge."""
    if x.ndim != 4:
        raise ShapeError(f"TV needs images (B, C, H, W), got shape {tuple(x.shape)}")
    grad = x.new_zeros((x.shape[0], 2, *x.shape[1:]))
    grad[:, 0, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    grad[:, 1, :, :, :-1] = x[:, :, :, 1:] - x[:, :, :, :-1]
    return grad


def divergence(p: torch.Tensor) -> torch.Tensor:
    """``-D^T p`` (the discrete divergence), so that ``<D x, p> = -<x, div p>``."""
    pv, ph = p[:, 0], p[:, 1]
    div = torch.zeros_like(pv)
    div[:, :, :-1] += pv[:, :, :-1]
    div[:, :, 1:] -= pv[:, :, :-1]
    div[:, :, :, :-1] += ph[:, :, :, :-1]
    div[:, :, :, 1:] -= ph[:, :, :, :-1]
    return div


def _magnitude(p: torch.Tensor) -> torch.Tensor:
    return (p.abs() ** 2).sum(1, keepdim=True).sqrt()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per batch item ``(B,)``."""
    return _magnitude(gradient(x)).reshape(x.shape[0], -1).sum(1)


def _project(p: torch.Tensor, radius) -> torch.Tensor:
    """Project each pixel's gradient-field vector onto the ball of ``radius`` (a float or ``(B,)``)."""
    radius = torch.as_tensor(radius, dtype=p.real.dtype, device=p.device).reshape((-1,) + (1,) * (p.ndim - 1))
    return p / torch.clamp(_magnitude(p) / radius, min=1.0)


def prox_tv(v: torch.Tensor, mu, p: torch.Tensor | None = None, *,
            iterations: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """``prox_{mu TV}(v)`` by FGP (Beck & Teboulle 2009, Algorithm GP with acceleration) on the dual.

    Returns ``(x, p)`` with ``x = v - mu D^T p`` and the dual field ``|p| <= 1`` (warm start for the next call).
    """
    mu_t = torch.as_tensor(mu, dtype=v.real.dtype, device=v.device).reshape((-1,) + (1,) * (v.ndim - 1))
    p = v.new_zeros((v.shape[0], 2, *v.shape[1:])) if p is None else p
    r, t = p.clone(), 1.0
    for _ in range(iterations):
        x = v + mu_t * divergence(r)
        p_new = _project(r + gradient(x) / (8 * mu_t[:, None]), 1.0)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        r = p_new + ((t - 1) / t_new) * (p_new - p)
        p, t = p_new, t_new
    return v + mu_t * divergence(p), p


def tv_gap(op, y: torch.Tensor, x: torch.Tensor, p: torch.Tensor, weight) -> tuple[torch.Tensor, torch.Tensor]:
    """``(relative gap, primal value)`` per item; ``p`` any dual field (projected onto ``|p| <= weight``)."""
    lam = torch.as_tensor(weight, dtype=x.real.dtype, device=x.device).reshape(-1)
    p = _project(p, lam)
    ax = op(x)
    q = ax - y
    primal = 0.5 * norm_squared(q) + lam * total_variation(x)
    r = op.adjoint(q) - divergence(p)
    box = x.abs().reshape(x.shape[0], -1).amax(1)
    gap = (q.conj() * ax).real.reshape(x.shape[0], -1).sum(1) + lam * total_variation(x) \
        + box * r.abs().reshape(x.shape[0], -1).sum(1)
    return gap.clamp_min(0) / primal.clamp_min(torch.finfo(primal.dtype).tiny), primal


class TVResult(NamedTuple):
    """A TV reconstruction and its stopping diagnostics (all per item ``(B,)`` except counts)."""

    x: torch.Tensor
    dual: torch.Tensor  # the dual field p, |p| <= weight
    iterations: int
    relative_change: torch.Tensor
    relative_gap: torch.Tensor
    objective: torch.Tensor
    converged: bool


def _finish(op, y, x, p, weight, it, change, converged) -> TVResult:
    gap, primal = tv_gap(op, y, x, p, weight)
    return TVResult(x, _project(p, weight), it, change, gap, primal, converged)


def tv_fista(op, y: torch.Tensor, weight, *, max_iter: int = 1000, tol: float = 1e-5, gap_tol: float = 1e-4,
             inner_iterations: int = 20, check_every: int = 10, x0: torch.Tensor | None = None,
             generator: torch.Generator | None = None, progress: bool = False, name: str = "tv") -> TVResult:
    """FISTA with an inner FGP prox for ``0.5||Ax - y||^2 + lambda TV(x)``, batched over ``y: (B, ...)``."""
    lam = torch.as_tensor(weight, dtype=y.real.dtype, device=y.device).reshape(-1)
    step = 1.0 / lipschitz(op, y, generator if generator is not None else torch.Generator().manual_seed(0))
    x = op.adjoint(y) * 0 if x0 is None else x0.clone()
    z, t, p = x.clone(), 1.0, None
    change = torch.full((y.shape[0],), math.inf, dtype=lam.dtype, device=y.device)
    bar = progress_bar(max_iter, progress, name)
    it, converged = 0, False
    for it in range(1, max_iter + 1):
        v = z - step * op.adjoint(op(z) - y)
        x_new, p = prox_tv(v, step * lam, p, iterations=inner_iterations)
        check_iterate(name, it, x_new)
        change = flatten_norm(x_new - x) / flatten_norm(x_new).clamp_min(1e-30)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
        bar.update(1)
        if it % check_every == 0 and bool((change < tol).all()):
            if bool((tv_gap(op, y, x, lam.reshape((-1,) + (1,) * (p.ndim - 1)) * p, lam)[0] < gap_tol).all()):
                converged = True
                break
    bar.close()
    return _finish(op, y, x, lam.reshape((-1,) + (1,) * (p.ndim - 1)) * p, lam, it, change, converged)


def tv_chambolle_pock(op, y: torch.Tensor, weight, *, max_iter: int = 3000, tol: float = 1e-5,
                      gap_tol: float = 1e-4, check_every: int = 10, x0: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, progress: bool = False, name: str = "tv") -> TVResult:
    """Chambolle–Pock primal–dual iterations for ``0.5||Ax - y||^2 + lambda TV(x)`` (see module docstring)."""
    lam = torch.as_tensor(weight, dtype=y.real.dtype, device=y.device).reshape(-1)
    norm_k = math.sqrt(lipschitz(op, y, generator if generator is not None else torch.Generator().manual_seed(0)) + 8.0)
    tau = sigma = 0.99 / norm_k
    x = op.adjoint(y) * 0 if x0 is None else x0.clone()
    xbar, q = x.clone(), torch.zeros_like(y)
    p = x.new_zeros((x.shape[0], 2, *x.shape[1:]))
    change = torch.full((y.shape[0],), math.inf, dtype=lam.dtype, device=y.device)
    bar = progress_bar(max_iter, progress, name)
    it, converged = 0, False
    for it in range(1, max_iter + 1):
        q = (q + sigma * (op(xbar) - y)) / (1 + sigma)
        p = _project(p + sigma * gradient(xbar), lam)
        x_new = x - tau * (op.adjoint(q) - divergence(p))
        check_iterate(name, it, x_new)
        change = flatten_norm(x_new - x) / flatten_norm(x_new).clamp_min(1e-30)
        xbar = 2 * x_new - x
        x = x_new
        bar.update(1)
        if it % check_every == 0 and bool((change < tol).all()):
            if bool((tv_gap(op, y, x, p, lam)[0] < gap_tol).all()):
                converged = True
                break
    bar.close()
    return _finish(op, y, x, p, lam, it, change, converged)


def tv(problem: InverseProblem, y: torch.Tensor, *, weight: float | None = None, algorithm: str = "fista",
       max_iter: int | None = None, tol: float = 1e-5, gap_tol: float = 1e-4, inner_iterations: int = 20,
       rate: float = TV_RATE_PHANTOM32, real: bool = False, progress: bool = False, latents=None) -> Posterior:
    """Total-variation reconstruction as a point-mass Posterior (see module docstring).

    Parameters
    ----------
    weight : ``lambda``; default ``sigma_y^2 * rate`` (needs Gaussian noise of known sigma).
    algorithm : ``"fista"`` or ``"chambolle_pock"``.
    max_iter : outer iterations (default 1000 for FISTA, 3000 for Chambolle–Pock).
    tol, gap_tol : stop when the relative change is below ``tol`` and the relative gap below ``gap_tol``.
    inner_iterations : FGP iterations per TV prox (FISTA only).
    rate : the TV prior's rate in the default weight.
    real : restrict a complex-input operator to real images.

    ``extras`` report the weight, iterations, final relative change and gap, objective and convergence.
    """
    if algorithm not in ("fista", "chambolle_pock"):
        raise ValueError(f"tv: algorithm must be 'fista' or 'chambolle_pock', got {algorithm!r}")
    if weight is not None and not (float(weight) > 0 and math.isfinite(float(weight))):
        raise ValueError(f"tv: weight must be a positive finite number or None, got {weight!r}")
    setup = prepare("tv", problem, y, real=real, need_sigma=weight is None, latents=latents)
    if len(setup.operator.in_shape) != 3:
        raise ShapeError(f"tv: needs images (C, H, W), the operator's in_shape is {setup.operator.in_shape}")
    lam = float(weight) if weight is not None else setup.sigma**2 * float(rate)
    common = dict(tol=tol, gap_tol=gap_tol, generator=setup.generator, progress=progress)
    if algorithm == "fista":
        res = tv_fista(setup.operator, setup.y, lam, max_iter=max_iter or 1000, inner_iterations=inner_iterations,
                       **common)
    else:
        res = tv_chambolle_pock(setup.operator, setup.y, lam, max_iter=max_iter or 3000, **common)
    extras = {"weight": lam, "algorithm": algorithm, "iterations": res.iterations,
              "relative_change": float(res.relative_change[0]), "relative_gap": float(res.relative_gap[0]),
              "objective": float(res.objective[0]), "converged": res.converged}
    settings = {"weight": weight, "algorithm": algorithm, "max_iter": max_iter, "tol": tol, "gap_tol": gap_tol,
                "inner_iterations": inner_iterations, "rate": rate, "real": real}
    return point_posterior("tv", res.x, setup, problem, settings=settings, nfe=0, extras=extras)
