r"""Tikhonov-regularised least squares with the weight chosen by the discrepancy principle or GCV.

.. math::  x_\lambda = \arg\min_x \|A x - y\|^2 + \lambda \|x\|^2 = (A^H A + \lambda I)^{-1} A^H y .

In the operator's SVD ``A = U diag(s) V^H`` (where usable) this is the filtered solution
``x = V diag(s / (s^2 + lambda)) U^H y`` and the residual is, with ``c = U^H y``,
``||A x_lambda - y||^2 = sum_{i<r} (lambda / (s_i^2 + lambda))^2 |c_i|^2 + sum_{i>=r} |c_i|^2``;
otherwise ``x`` comes from conjugate gradients on the normal equations.

Choosing lambda
---------------
* ``"discrepancy"`` (Morozov 1966): the ``lambda`` with ``||A x_lambda - y||^2 = tau m sigma^2``, ``m``
  the real degrees of freedom of ``y`` (a complex entry counts twice), the expected squared norm of
  the noise. The residual increases with ``lambda``, so the root is found by Illinois regula falsi on
  ``log lambda``. If even ``lambda -> 0`` leaves more residual, the smallest ``lambda`` of the bracket
  is used (status ``"floor_above_target"``); if ``||y||^2`` is below the target, ``x = 0`` (``"data_below_noise"``).
* ``"gcv"`` (Golub, Heath & Wahba 1979): minimise ``||A x_lambda - y||^2 / (m - sum_i s_i^2/(s_i^2+lambda))^2``
  over a log grid refined by golden sections (needs the SVD).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from bayesinv.operators.base import LinearOperator
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers.baselines._shared import (lipschitz, norm_squared, point_posterior, prepare, real_count,
                                                 shifted_normal_solve, svd_usable)

__all__ = ["tikhonov", "tikhonov_solve", "tikhonov_residual", "discrepancy_weight", "gcv_weight", "WeightChoice"]

_LOG_SPAN = (-8.0, 4.0)  # the search bracket: lambda in ||A||^2 * [1e-8, 1e4]


class WeightChoice(NamedTuple):
    """A regularisation weight per measurement with how it was found."""

    weight: torch.Tensor  # (B,) lambda (inf: x = 0)
    residual: torch.Tensor  # (B,) ||A x_lambda - y||^2
    target: torch.Tensor | None  # (B,) tau m sigma^2 (discrepancy) or None
    status: list[str]  # per item: "ok", "floor_above_target", "data_below_noise"
    evaluations: int  # residual evaluations (solves)


def tikhonov_solve(op: LinearOperator, y: torch.Tensor, weight, *, x0: torch.Tensor | None = None,
                   max_iter: int = 500, rtol: float = 1e-10) -> torch.Tensor:
    """``(A^H A + lambda I)^{-1} A^H y`` for ``y: (B, *out_shape)`` and ``lambda`` a float or ``(B,)``.

    An infinite ``lambda`` gives ``x = 0``.
    """
    lam = torch.as_tensor(weight, dtype=y.real.dtype, device=y.device).reshape(-1).expand(y.shape[0])
    rhs = op.adjoint(y)
    finite = torch.isfinite(lam)
    x = shifted_normal_solve(op, rhs, torch.where(finite, lam, torch.ones_like(lam)), x0=x0, max_iter=max_iter,
                             rtol=rtol)
    return torch.where(finite.reshape((-1,) + (1,) * (x.ndim - 1)), x, torch.zeros_like(x))


def tikhonov_residual(op: LinearOperator, y: torch.Tensor, weight, *, x0: torch.Tensor | None = None,
                      max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(||A x_lambda - y||^2 per item, x_lambda or None)``; closed form in the SVD basis where usable."""
    lam = torch.as_tensor(weight, dtype=y.real.dtype, device=y.device).reshape(-1, 1)
    if svd_usable(op):
        svd = op.svd()
        coef = svd.Ut(y)
        power = coef.abs() ** 2
        sing = svd.singulars.to(device=coef.device, dtype=power.dtype)
        r = sing.shape[0]
        filt = lam / (sing**2 + lam)
        return (filt**2 * power[:, :r]).sum(1) + power[:, r:].sum(1), None
    x = tikhonov_solve(op, y, lam.reshape(-1), x0=x0, max_iter=max_iter)
    return norm_squared(op(x) - y), x


def discrepancy_weight(op: LinearOperator, y: torch.Tensor, sigma: float, *, tau: float = 1.0,
                       max_evaluations: int = 80, rtol: float = 1e-8,
                       generator: torch.Generator | None = None) -> WeightChoice:
    """The discrepancy-principle weight: ``||A x_lambda - y||^2 = tau m sigma^2`` for each item of ``y``."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive finite number, got {sigma}")
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a positive finite number, got {tau}")
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    scale = math.log(lipschitz(op, y, generator))
    batch = y.shape[0]
    target = torch.full((batch,), tau * real_count(y) * sigma**2, dtype=y.real.dtype, device=y.device)
    log_target = target.log()
    state = {"x": None, "evals": 0}

    def f(u: torch.Tensor) -> torch.Tensor:
        res, x = tikhonov_residual(op, y, u.exp(), x0=state["x"])
        state["x"], state["evals"] = x, state["evals"] + 1
        return res.clamp_min(1e-300).log() - log_target

    a = torch.full((batch,), scale + _LOG_SPAN[0] * math.log(10), dtype=y.real.dtype, device=y.device)
    b = torch.full_like(a, scale + _LOG_SPAN[1] * math.log(10))
    fa, fb = f(a), f(b)
    low_bad, high_bad = fa > 0, fb < 0  # no root inside the bracket
    fa = torch.where(low_bad | high_bad, -torch.ones_like(fa), fa)  # keep those items' iteration benign
    fb = torch.where(low_bad | high_bad, torch.ones_like(fb), fb)
    c, fc = b.clone(), fb.clone()
    while state["evals"] < max_evaluations and bool((fc.abs() > rtol).any()):
        c = b - fb * (b - a) / (fb - fa)
        fc = f(c)
        swap = fc * fb < 0  # Illinois: the root lies between b and c; otherwise halve the stale end
        a, fa = torch.where(swap, b, a), torch.where(swap, fb, fa / 2)
        b, fb = c, fc
    lam = c.exp()
    lam = torch.where(low_bad, a.new_tensor(math.exp(scale + _LOG_SPAN[0] * math.log(10))), lam)
    lam = torch.where(high_bad & ~low_bad, torch.full_like(lam, math.inf), lam)
    status = ["floor_above_target" if lo else "data_below_noise" if hi else "ok"
              for lo, hi in zip(low_bad.tolist(), high_bad.tolist())]
    residual, _ = tikhonov_residual(op, y, torch.where(torch.isfinite(lam), lam, torch.ones_like(lam)))
    residual = torch.where(torch.isfinite(lam), residual, norm_squared(y))
    return WeightChoice(lam, residual, target, status, state["evals"] + 1)


def gcv_weight(op: LinearOperator, y: torch.Tensor, *, grid: int = 241, refinements: int = 60,
               generator: torch.Generator | None = None) -> WeightChoice:
    """Generalised cross-validation weight (needs a usable SVD; see module docstring)."""
    if not svd_usable(op):
        raise ValueError(f"GCV needs the operator's SVD, which {type(op).__name__} does not provide "
                         f"(for this domain); use rule='discrepancy'")
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    svd = op.svd()
    coef = svd.Ut(y)
    power = coef.abs() ** 2
    sing2 = svd.singulars.to(device=coef.device, dtype=power.dtype) ** 2
    m, r = power.shape[1], sing2.shape[0]

    def gcv(u: torch.Tensor) -> torch.Tensor:  # u: (B, K) log lambda -> (B, K)
        lam = u.exp()[..., None]
        filt = lam / (sing2 + lam)
        res = (filt**2 * power[:, None, :r]).sum(-1) + power[:, None, r:].sum(-1)
        dof = m - (sing2 / (sing2 + lam)).sum(-1)
        return res / dof**2

    scale = math.log(lipschitz(op, y, generator))
    logs = torch.linspace(scale + _LOG_SPAN[0] * math.log(10), scale + _LOG_SPAN[1] * math.log(10), grid,
                          dtype=power.dtype, device=power.device)
    values = gcv(logs.expand(y.shape[0], grid))
    best = values.argmin(1)
    lo = logs[(best - 1).clamp_min(0)]
    hi = logs[(best + 1).clamp_max(grid - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(refinements):  # golden-section search on [lo, hi]
        u1, u2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = gcv(torch.stack([u1, u2], 1))
        keep_left = left[:, 0] < left[:, 1]
        hi = torch.where(keep_left, u2, hi)
        lo = torch.where(keep_left, lo, u1)
    lam = ((lo + hi) / 2).exp()
    residual, _ = tikhonov_residual(op, y, lam)
    return WeightChoice(lam, residual, None, ["ok"] * y.shape[0], grid + 2 * refinements)


def tikhonov(problem: InverseProblem, y: torch.Tensor, *, weight: float | None = None, rule: str = "discrepancy",
             tau: float = 1.0, real: bool = False, progress: bool = False, max_iter: int = 500,
             latents=None) -> Posterior:
    r"""Tikhonov reconstruction ``argmin ||Ax - y||^2 + lambda ||x||^2`` as a point-mass Posterior.

    Parameters
    ----------
    problem, y : the inverse problem (linear operator) and one measurement.
    weight : ``lambda``; ``None`` chooses it by ``rule``.
    rule : ``"discrepancy"`` (needs Gaussian noise of known sigma) or ``"gcv"`` (needs the SVD).
    tau : the discrepancy factor (``||A x - y||^2 = tau m sigma^2``).
    real : restrict a complex-input operator to real images.
    progress : unused (accepted for a uniform call).
    max_iter : conjugate-gradient iterations per solve when there is no SVD.

    The chosen ``lambda``, the residual, the target and the status are in ``extras``.
    """
    if rule not in ("discrepancy", "gcv"):
        raise ValueError(f"tikhonov: rule must be 'discrepancy' or 'gcv', got {rule!r}")
    if weight is not None and not (float(weight) >= 0 and math.isfinite(float(weight))):
        raise ValueError(f"tikhonov: weight must be a non-negative finite number or None, got {weight!r}")
    setup = prepare("tikhonov", problem, y, real=real, need_sigma=weight is None and rule == "discrepancy",
                    latents=latents)
    op, y = setup.operator, setup.y
    if weight is not None:
        choice = WeightChoice(torch.tensor([float(weight)], dtype=y.real.dtype), torch.full((1,), math.nan), None,
                              ["given"], 0)
    elif rule == "discrepancy":
        choice = discrepancy_weight(op, y, setup.sigma, tau=tau, generator=setup.generator)
    else:
        choice = gcv_weight(op, y, generator=setup.generator)
    if weight is not None and float(weight) == 0:
        x = op.pinv(y)
    else:
        x = tikhonov_solve(op, y, choice.weight, max_iter=max_iter)
    residual = float(norm_squared(op(x) - y)[0])
    extras = {"weight": float(choice.weight[0]), "rule": "given" if weight is not None else rule,
              "residual": residual, "status": choice.status[0], "evaluations": choice.evaluations,
              "target": None if choice.target is None else float(choice.target[0]),
              "method": "svd" if svd_usable(op) else "cg"}
    return point_posterior("tikhonov", x, setup, problem, nfe=0, extras=extras,
                           settings={"weight": weight, "rule": rule, "tau": tau, "real": real, "max_iter": max_iter})
