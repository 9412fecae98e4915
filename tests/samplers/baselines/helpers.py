"""Small linear problems for the baseline tests (dense references via ``to_matrix``)."""

from __future__ import annotations

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators.base import LinearOperator
from bayesinv.operators.matrix import MatrixOperator

__all__ = ["NoSVD", "matrix_problem", "real_system"]


class NoSVD(LinearOperator):
    """A matrix operator hiding its SVD, so solvers take their conjugate-gradient paths."""

    def __init__(self, matrix: torch.Tensor, in_shape):
        self.inner_op = MatrixOperator(matrix, in_shape)
        super().__init__(in_shape, self.inner_op.out_shape, input_complex=matrix.is_complex(),
                         output_complex=matrix.is_complex())

    def _forward(self, x):
        return self.inner_op(x)

    def _adjoint(self, y):
        return self.inner_op.adjoint(y)


def matrix_problem(m: int, shape, generator: torch.Generator, *, sigma: float = 0.1, complex_: bool = False,
                   svd: bool = True, prior=None) -> tuple[InverseProblem, torch.Tensor, torch.Tensor]:
    """A random Gaussian-matrix problem with a simulated measurement: ``(problem, x_true, y)``."""
    n = torch.Size(shape).numel()
    dtype = torch.complex128 if complex_ else torch.float64
    matrix = torch.randn(m, n, generator=generator, dtype=dtype) / n**0.5
    op = MatrixOperator(matrix, in_shape=shape) if svd else NoSVD(matrix, shape)
    problem = InverseProblem(op, Gaussian(sigma), prior)
    x = torch.rand(1, *shape, generator=generator, dtype=torch.float64)
    y = problem.simulate(x, generator=generator)
    return problem, x, y


def real_system(op: LinearOperator) -> torch.Tensor:
    """The real matrix of a real-input operator with complex output: rows ``[Re M; Im M]``."""
    mat = op.to_matrix()
    return torch.cat([mat.real, mat.imag]) if mat.is_complex() else mat
