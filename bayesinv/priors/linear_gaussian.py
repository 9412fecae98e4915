"""A linear-Gaussian inverse problem as dense real float64 matrices: the input of every dense exact posterior
(:mod:`bayesinv.priors.exact`, :mod:`bayesinv.priors.lesion_posterior`) and of the NUTS reference."""

from __future__ import annotations

import torch

from bayesinv._validation import check_tensor
from bayesinv.errors import ShapeError
from bayesinv.noise import Gaussian
from bayesinv.operators.base import LinearOperator
from bayesinv.problem import InverseProblem

__all__ = ["dense_linear_gaussian", "MAX_DENSE_DIM"]

MAX_DENSE_DIM = 4096  # the dense exact posteriors build d x d matrices


def dense_linear_gaussian(problem: InverseProblem, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A linear-Gaussian problem as dense real float64 ``(A, y, sigma)``: ``A (m, d)``, ``y (m,)``.

    Checks that the problem has a :class:`LinearOperator` on real images, no nuisance latents and Gaussian
    noise of known sigma. Complex measurements become pairs of real rows (real and imaginary parts carry
    independent ``N(0, sigma^2)`` noise), in the order of ``torch.view_as_real``.
    """
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an InverseProblem, got {type(problem).__name__}")
    if problem.nuisance:
        raise ValueError(f"exact_posterior needs a known operator; this problem has latents {sorted(problem.nuisance)}")
    op = problem.operator
    if not isinstance(op, LinearOperator):
        raise TypeError(f"exact_posterior needs a LinearOperator, got {type(op).__name__}")
    if op.input_complex:
        raise TypeError(f"{type(op).__name__} acts on complex images; the analytic priors are real")
    if not isinstance(problem.noise, Gaussian) or problem.noise.sigma is None:
        raise TypeError(f"exact_posterior needs Gaussian noise with a known sigma, got {problem.noise!r}")
    if op.in_dim > MAX_DENSE_DIM:
        raise ValueError(f"exact_posterior is dense; in_dim={op.in_dim} > {MAX_DENSE_DIM}")
    check_tensor("y", y)
    y = problem.check_measurement(y.detach())
    if y.shape[0] != 1:
        raise ShapeError(f"y must hold one measurement, shape {op.out_shape} or (1, ...), got {tuple(y.shape)}")
    matrix = op.to_matrix(torch.float64)
    if matrix.is_complex():  # Re/Im parts are independent N(0, sigma^2): stack them as real rows
        matrix = torch.stack([matrix.real, matrix.imag], dim=1).reshape(-1, matrix.shape[1])
        y_vec = torch.view_as_real(y.to(torch.complex128)).reshape(-1)
    else:
        y_vec = y.to(torch.float64).reshape(-1)
    return matrix, y_vec, float(problem.noise.sigma)
