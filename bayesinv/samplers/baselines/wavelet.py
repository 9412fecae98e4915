r"""Sparsity in an orthonormal Haar wavelet basis, solved by FISTA (optionally monotone).

.. math::  \min_x F(x) = \tfrac12 \|A x - y\|^2 + \lambda \|M \odot W x\|_1

``W`` is the orthonormal 2-D Haar transform with ``levels`` levels (:func:`haar_forward`, exact
inverse :func:`haar_inverse` ``= W^T``), ``M`` masks out the coarsest approximation coefficients
(they carry the image mean and are not sparse). The prox of the penalty is exact because ``W`` is
orthonormal: ``prox(v) = W^T soft(W v, t lambda)`` (soft-thresholding of the modulus for complex images).

FISTA (Beck & Teboulle 2009, SIAM J. Imaging Sci. 2(1)) with step ``1/L``, ``L = ||A||^2``;
``monotone=True`` is MFISTA (Beck & Teboulle 2009, IEEE TIP 18(11), eq. (5.2)): the iterate is the
better of the prox point and the previous iterate, so ``F`` never increases, and the momentum uses
the prox point. Stops when the relative change ``||u_k - x_{k-1}|| / ||u_k||`` of the prox point is below ``tol``.

Default weight: ``lambda = sigma_y^2 * rate``, the MAP weight of a Laplace prior ``exp(-rate ||M W x||_1)``
on the detail coefficients under Gaussian noise, with ``rate = k / E||M W x||_1`` its maximum-likelihood value
for ``k`` penalised coefficients, fitted on 1000 training phantoms (32x32, 3 levels: ``WAVELET_RATE_PHANTOM32``,
``benchmarks/baselines.py --fit-rates``). ``rule="universal"`` gives instead Donoho & Johnstone's (1994)
universal threshold ``sigma_y sqrt(2 log n)``, which removes pure noise with high probability but
over-smooths these problems (about 20 dB PSNR on the benchmark).
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

__all__ = ["WAVELET_RATE_PHANTOM32", "fit_wavelet_rate", "wavelet_l1", "wavelet_fista", "haar_forward",
           "haar_inverse", "detail_mask", "WaveletResult"]

_S = 1 / math.sqrt(2)

#: k / E||M W x||_1 on 1000 32x32 training phantoms, 3 Haar levels (benchmarks/baselines.py --fit-rates)
WAVELET_RATE_PHANTOM32 = 19.1


def _check_levels(shape, levels: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be a positive int, got {levels!r}")
    h, w = shape[-2:]
    if h % 2**levels or w % 2**levels:
        raise ShapeError(f"Haar with {levels} levels needs H and W divisible by {2**levels}, got {h}x{w}")


def haar_forward(x: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Orthonormal 2-D Haar analysis ``W x`` on ``(..., H, W)``; coefficients in the usual pyramid layout
    (approximation in the top-left ``H/2^L x W/2^L`` block, details around it).

    One level on each 2x2 block ``[[a, b], [c, d]]``: approximation ``(a+b+c+d)/2``, and details
    ``(a-b+c-d)/2`` (horizontal change), ``(a+b-c-d)/2`` (vertical), ``(a-b-c+d)/2`` (diagonal).

    >>> import torch
    >>> haar_forward(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), levels=1).round(decimals=5).tolist()
    [[5.0, -1.0], [-2.0, 0.0]]
    """
    _check_levels(x.shape, levels)
    out = x.clone()
    h, w = x.shape[-2:]
    for _ in range(levels):
        block = out[..., :h, :w]
        rows_sum = (block[..., 0::2, :] + block[..., 1::2, :]) * _S
        rows_diff = (block[..., 0::2, :] - block[..., 1::2, :]) * _S
        ll = (rows_sum[..., 0::2] + rows_sum[..., 1::2]) * _S
        lh = (rows_sum[..., 0::2] - rows_sum[..., 1::2]) * _S
        hl = (rows_diff[..., 0::2] + rows_diff[..., 1::2]) * _S
        hh = (rows_diff[..., 0::2] - rows_diff[..., 1::2]) * _S
        out[..., :h, :w] = torch.cat([torch.cat([ll, lh], -1), torch.cat([hl, hh], -1)], -2)
        h, w = h // 2, w // 2
    return out


def haar_inverse(c: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Inverse (= adjoint) of :func:`haar_forward`."""
    _check_levels(c.shape, levels)
    out = c.clone()
    big_h, big_w = c.shape[-2:]
    for level in reversed(range(levels)):
        h, w = big_h // 2**level, big_w // 2**level
        block = out[..., :h, :w]
        ll, lh = block[..., : h // 2, : w // 2], block[..., : h // 2, w // 2:]
        hl, hh = block[..., h // 2:, : w // 2], block[..., h // 2:, w // 2:]
        rows_sum = torch.empty_like(block[..., : h // 2, :])
        rows_diff = torch.empty_like(rows_sum)
        rows_sum[..., 0::2], rows_sum[..., 1::2] = (ll + lh) * _S, (ll - lh) * _S
        rows_diff[..., 0::2], rows_diff[..., 1::2] = (hl + hh) * _S, (hl - hh) * _S
        new = torch.empty_like(block)
        new[..., 0::2, :], new[..., 1::2, :] = (rows_sum + rows_diff) * _S, (rows_sum - rows_diff) * _S
        out[..., :h, :w] = new
    return out


def detail_mask(shape, levels: int, *, device=None) -> torch.Tensor:
    """Boolean mask of the penalised (detail) coefficients: all but the coarsest ``H/2^L x W/2^L`` block."""
    mask = torch.ones(tuple(shape[-2:]), dtype=torch.bool, device=device)
    mask[: shape[-2] // 2**levels, : shape[-1] // 2**levels] = False
    return mask


def _soft(c: torch.Tensor, threshold: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    shrink = torch.clamp(1 - threshold / c.abs().clamp_min(1e-300), min=0.0)
    return torch.where(mask, c * shrink, c)


class WaveletResult(NamedTuple):
    """A wavelet-l1 reconstruction and its diagnostics."""

    x: torch.Tensor
    iterations: int
    relative_change: torch.Tensor  # (B,)
    objective: torch.Tensor  # (iterations + 1, B): F at the start and after every iteration
    converged: bool


def fit_wavelet_rate(images: torch.Tensor, levels: int = 3) -> float:
    """``k / mean ||M W x||_1`` over ``images: (N, C, H, W)``: the ML rate of the Laplace detail prior."""
    mask = detail_mask(images.shape, levels, device=images.device)
    l1 = (haar_forward(images, levels).abs() * mask).reshape(images.shape[0], -1).sum(1)
    return float(mask.sum() * images.shape[1] / l1.mean())


def wavelet_objective(op, y: torch.Tensor, x: torch.Tensor, weight, levels: int) -> torch.Tensor:
    """``F(x) = 0.5 ||A x - y||^2 + lambda ||M W x||_1`` per item ``(B,)``."""
    lam = torch.as_tensor(weight, dtype=x.real.dtype, device=x.device).reshape(-1)
    coef = haar_forward(x, levels)
    l1 = (coef.abs() * detail_mask(x.shape, levels, device=x.device)).reshape(x.shape[0], -1).sum(1)
    return 0.5 * norm_squared(op(x) - y) + lam * l1


def wavelet_fista(op, y: torch.Tensor, weight, *, levels: int = 3, max_iter: int = 500, tol: float = 1e-5,
                  monotone: bool = False, generator: torch.Generator | None = None, progress: bool = False,
                  name: str = "wavelet_l1") -> WaveletResult:
    """(M)FISTA for ``0.5||Ax - y||^2 + lambda ||M W x||_1``, batched over ``y: (B, ...)``."""
    lam = torch.as_tensor(weight, dtype=y.real.dtype, device=y.device).reshape(-1)
    step = 1.0 / lipschitz(op, y, generator if generator is not None else torch.Generator().manual_seed(0))
    x = op.adjoint(y) * 0
    _check_levels(x.shape, levels)
    mask = detail_mask(x.shape, levels, device=x.device)
    bshape = (-1,) + (1,) * (x.ndim - 1)
    threshold = (step * lam).reshape(bshape)
    z, t = x.clone(), 1.0
    objective = [wavelet_objective(op, y, x, lam, levels)]
    change = torch.full((y.shape[0],), math.inf, dtype=lam.dtype, device=y.device)
    bar = progress_bar(max_iter, progress, name)
    it, converged = 0, False
    for it in range(1, max_iter + 1):
        v = z - step * op.adjoint(op(z) - y)
        u = haar_inverse(_soft(haar_forward(v, levels), threshold, mask), levels)
        check_iterate(name, it, u)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        f_u = wavelet_objective(op, y, u, lam, levels)
        if monotone:
            better = (f_u <= objective[-1]).reshape(bshape)
            x_new = torch.where(better, u, x)
            z = x_new + (t / t_new) * (u - x_new) + ((t - 1) / t_new) * (x_new - x)
            objective.append(torch.minimum(f_u, objective[-1]))
        else:
            x_new = u
            z = x_new + ((t - 1) / t_new) * (x_new - x)
            objective.append(f_u)
        change = flatten_norm(u - x) / flatten_norm(u).clamp_min(1e-30)  # the prox point's move (MFISTA may keep x)
        x, t = x_new, t_new
        bar.update(1)
        if bool((change < tol).all()) and it > 1:
            converged = True
            break
    bar.close()
    return WaveletResult(x, it, change, torch.stack(objective), converged)


def wavelet_l1(problem: InverseProblem, y: torch.Tensor, *, weight: float | None = None, rule: str = "map",
               rate: float = WAVELET_RATE_PHANTOM32, levels: int = 3,
               monotone: bool = False, max_iter: int = 500, tol: float = 1e-5, real: bool = False,
               progress: bool = False, latents=None) -> Posterior:
    """Haar-wavelet l1 reconstruction as a point-mass Posterior (see module docstring).

    Parameters
    ----------
    weight : ``lambda``; default by ``rule`` (needs Gaussian noise of known sigma).
    rule : ``"map"`` (``sigma_y^2 * rate``) or ``"universal"`` (``sigma_y sqrt(2 log n)``).
    rate : the Laplace prior's rate in the ``"map"`` rule.
    levels : Haar levels (H and W divisible by ``2**levels``).
    monotone : MFISTA instead of FISTA.
    max_iter, tol : stop after ``max_iter`` iterations or when the relative change is below ``tol``.
    real : restrict a complex-input operator to real images.
    """
    if weight is not None and not (float(weight) > 0 and math.isfinite(float(weight))):
        raise ValueError(f"wavelet_l1: weight must be a positive finite number or None, got {weight!r}")
    if rule not in ("map", "universal"):
        raise ValueError(f"wavelet_l1: rule must be 'map' or 'universal', got {rule!r}")
    setup = prepare("wavelet_l1", problem, y, real=real, need_sigma=weight is None, latents=latents)
    n = setup.operator.in_dim
    if weight is not None:
        lam = float(weight)
    else:
        lam = setup.sigma**2 * float(rate) if rule == "map" else setup.sigma * math.sqrt(2 * math.log(n))
    res = wavelet_fista(setup.operator, setup.y, lam, levels=levels, max_iter=max_iter, tol=tol, monotone=monotone,
                        generator=setup.generator, progress=progress)
    extras = {"weight": lam, "iterations": res.iterations, "relative_change": float(res.relative_change[0]),
              "objective": float(res.objective[-1, 0]), "converged": res.converged, "monotone": monotone}
    settings = {"weight": weight, "rule": rule, "rate": rate, "levels": levels, "monotone": monotone,
                "max_iter": max_iter, "tol": tol,
                "real": real}
    return point_posterior("wavelet_l1", res.x, setup, problem, settings=settings, nfe=0, extras=extras)
