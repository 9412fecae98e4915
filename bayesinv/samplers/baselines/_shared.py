"""Machinery shared by the deterministic baselines: input checks, linear solves, the point-mass Posterior.

Every baseline is a plain function ``baseline(problem, y, *, progress=False, **options) -> Posterior``
that returns a *point estimate*: a Posterior with one chain and one draw (a point mass, flagged
``point_estimate=True``), its iterations/NFE, wall time and stopping diagnostics in ``extras``.
The numerical work is done by batched solvers (``y: (B, *out_shape)``) that the baselines wrap, so
benchmarks can reconstruct many images at once.

Complex operators (MRI) act on complex images; ``real=True`` restricts the unknown to real images
through :class:`RealInput`, whose adjoint is ``Re(A^H y)`` (the adjoint for the real inner product
``Re <a, b>``), so every solver below works unchanged on the real subspace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from bayesinv.noise import as_real_view
from bayesinv.operators.base import LinearOperator, Operator, conjugate_gradient, inner
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers.baselines._real import RealInput
from bayesinv._validation import check_step
from bayesinv.operators.base import operator_norm_squared
from bayesinv.samplers._driver import Clock, check_inputs, make_posterior

__all__ = ["Setup", "prepare", "RealInput", "point_posterior", "real_count", "svd_usable", "shifted_normal_solve",
           "norm_squared", "lipschitz", "check_iterate", "flatten_norm"]


class Setup(NamedTuple):
    """What a baseline needs from the problem: the (possibly real-restricted) operator, ``y (1, ...)``,
    the Gaussian noise std (``None`` for non-Gaussian noise), the generator and the clock."""

    operator: Operator
    y: torch.Tensor
    sigma: float | None
    generator: torch.Generator
    clock: Clock


def prepare(name: str, problem: InverseProblem, y: torch.Tensor, *, linear: bool = True, real: bool = False,
            need_sigma: bool = False, generator: torch.Generator | None = None,
            latents: Mapping[str, Any] | None = None) -> Setup:
    """Check the arguments shared by every baseline and fetch the operator and the noise level.

    ``latents`` fixes the problem's latent sites (an unknown noise sigma, a blur width) if it has any.
    Raises ``TypeError``/``ValueError`` naming the argument, expected and given value.
    """
    clock = Clock()
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    y = check_inputs(name, problem, y, num_samples=1, steps=None, generator=generator, need_score_prior=False)
    if not isinstance(real, bool):
        raise TypeError(f"{name}: real must be a bool, got {real!r}")
    fixed = problem.resolve_latents(latents, 1, y)
    op = problem.chain_operator(fixed)
    if linear and not getattr(op, "linear", False):
        raise TypeError(f"{name}: needs a LinearOperator (adjoint, normal), got {type(op).__name__}")
    if real and op.input_complex:
        op = RealInput(op)
    sigma = problem.gaussian_noise_std(fixed)
    if isinstance(sigma, torch.Tensor):
        sigma = float(sigma.reshape(-1)[0])
    if need_sigma and sigma is None:
        raise ValueError(f"{name}: needs Gaussian noise with a known sigma for its default weight; "
                         f"got {problem.noise!r}: pass the weight explicitly")
    return Setup(op, y, sigma, generator, clock)


def point_posterior(name: str, estimate: torch.Tensor, setup: Setup, problem: InverseProblem, *,
                    settings: Mapping[str, Any], nfe: int, extras: Mapping[str, Any]) -> Posterior:
    """A Posterior holding the point estimate ``estimate: (1, *in_shape)`` as one chain with one draw."""
    check_step(name, -1, estimate, detail="final estimate")
    post = make_posterior(name, estimate.detach().unsqueeze(1), settings=settings, nfe=nfe, clock=setup.clock,
                          generator=setup.generator, problem=problem,
                          extras={"point_estimate": True, **dict(extras)})
    post.point_estimate = True
    return post


def check_iterate(name: str, step: int, x: torch.Tensor) -> torch.Tensor:
    """Raise :class:`~bayesinv.errors.SamplerDivergence` naming ``step`` if ``x`` holds NaN/inf."""
    return check_step(name, step, x, detail=f"iteration {step}")


def real_count(y: torch.Tensor) -> int:
    """Real degrees of freedom of one measurement (a complex entry counts twice): ``m`` in ``E||n||^2 = m sigma^2``."""
    return as_real_view(y[:1]).numel()


def norm_squared(x: torch.Tensor) -> torch.Tensor:
    """``||x||^2`` per batch item ``(B,)`` (complex entries count ``|x|^2``)."""
    return inner(x, x)


def flatten_norm(x: torch.Tensor) -> torch.Tensor:
    """``||x||`` per batch item ``(B,)``."""
    return norm_squared(x).sqrt()


def svd_usable(op: Operator) -> bool:
    """Whether the operator's SVD diagonalises the normal equations on its own domain.

    A real-input operator with complex output (a real image's Fourier samples) has a complex SVD
    that solves the complex, not the real, least-squares problem, so it is not used there.
    """
    if not getattr(op, "linear", False) or not op.has_svd:
        return False
    return op.input_complex or not op.output_complex


def lipschitz(op: LinearOperator, like: torch.Tensor, generator: torch.Generator) -> float:
    """``||A||^2``, the Lipschitz constant of ``grad 0.5||Ax - y||^2`` (SVD or 50 power iterations, +1% margin)."""
    value = operator_norm_squared(op, like, generator=generator)
    return value if svd_usable(op) else 1.01 * value


def shifted_normal_solve(op: LinearOperator, rhs: torch.Tensor, shift: torch.Tensor | float, *,
                         scale: float = 1.0, x0: torch.Tensor | None = None, max_iter: int = 500,
                         rtol: float = 1e-10) -> torch.Tensor:
    """Solve ``(scale A^H A + shift I) x = rhs`` per batch item (``shift > 0``, a float or ``(B,)``).

    Exact in the operator's SVD basis where usable (``x = V (Vt rhs / (scale s^2 + shift))``),
    conjugate gradients (warm-started at ``x0``) otherwise.
    """
    shift_t = torch.as_tensor(shift, dtype=rhs.real.dtype, device=rhs.device).reshape(-1)
    shape = (-1,) + (1,) * (rhs.ndim - 1)
    if svd_usable(op):
        svd = op.svd()
        coef = svd.Vt(rhs)
        sing = svd.singulars.to(device=coef.device, dtype=coef.real.dtype)
        denom = shift_t.reshape(-1, 1).expand(coef.shape[0], coef.shape[1]).clone()
        denom[:, : sing.shape[0]] += scale * sing**2
        out = svd.V(coef / denom)
        return out.real.to(rhs.dtype) if out.is_complex() and not rhs.is_complex() else out.to(rhs.dtype)
    return conjugate_gradient(lambda v: scale * op.normal(v) + shift_t.reshape(shape) * v, rhs, x0=x0,
                              max_iter=max_iter, rtol=rtol)

