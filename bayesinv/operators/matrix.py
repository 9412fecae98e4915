"""Dense matrix operators: ``A x = M x`` on flattened samples (compressed sensing, small testbeds)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayesinv.operators.base import SVD, LinearOperator

__all__ = ["MatrixOperator"]


class MatrixOperator(LinearOperator):
    """``A x = M @ x.flatten()`` for a dense ``M: (m, n)``, with ``in_shape`` any shape of ``n`` elements.

    The output has shape ``(m,)``. The SVD is computed once (``torch.linalg.svd``) and cached, so
    ``pinv`` and DDRM use it. Complex matrices make a complex-input, complex-output operator.

    >>> import torch
    >>> op = MatrixOperator(torch.eye(2, 4, dtype=torch.float64), in_shape=(4,))
    >>> op(torch.arange(4.0, dtype=torch.float64)[None]).tolist()
    [[0.0, 1.0]]
    """

    def __init__(self, matrix: torch.Tensor, in_shape: Sequence[int] | None = None):
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2:
            raise ValueError(f"matrix must be a 2-D tensor (m, n), got {getattr(matrix, 'shape', type(matrix))}")
        m, n = matrix.shape
        in_shape = (n,) if in_shape is None else tuple(in_shape)
        if torch.Size(in_shape).numel() != n:
            raise ValueError(f"in_shape {in_shape} has {torch.Size(in_shape).numel()} elements but the matrix has n={n} columns")
        cplx = matrix.is_complex()
        super().__init__(in_shape, (m,), input_complex=cplx, output_complex=cplx)
        self.register_tensor("matrix", matrix)
        self._svd_cache = None

    def _mat(self, like: torch.Tensor, *, adjoint: bool = False) -> torch.Tensor:
        """``M`` (or, with ``adjoint``, a contiguous ``M^H``) in ``like``'s dtype and device, cached. Both are
        applied as ``v @ mat.T``: the GEMM layout that reads the matrix row by row (faster than ``v @ M^T``
        with ``M^T`` stored contiguously)."""
        dtype = like.dtype if (like.is_complex() or not self.matrix.is_complex()) else self.matrix.dtype

        def build() -> torch.Tensor:
            mat = self.matrix.to(device=like.device, dtype=dtype)
            return mat.T.conj().contiguous() if adjoint else mat

        return self._derived("adjoint" if adjoint else "matrix", dtype, like.device, build, self.matrix)

    def _forward(self, x):
        return x.reshape(x.shape[0], -1) @ self._mat(x).T

    def _adjoint(self, y):
        return (y @ self._mat(y, adjoint=True).T).reshape(y.shape[0], *self.in_shape)

    def _tensors_changed(self) -> None:
        self._svd_cache = None

    def _factors(self):
        if self._svd_cache is None:
            u, s, vh = torch.linalg.svd(self.matrix.to(torch.complex128 if self.matrix.is_complex() else torch.float64),
                                        full_matrices=True)
            tol = s.max() * max(self.matrix.shape) * torch.finfo(s.dtype).eps if s.numel() else 0.0
            self._svd_cache = (u, s[s > tol], vh)
        return self._svd_cache

    def _pinv(self, y):
        u, s, vh = self._factors()
        r = s.shape[0]
        coef = (y.to(u.dtype) @ u[:, :r].conj()) / s
        x = coef @ vh[:r].conj()
        x = x.to(y.dtype if y.is_complex() or not self.input_complex else y.dtype)
        return x.reshape(y.shape[0], *self.in_shape)

    def svd(self) -> SVD:
        u, s, vh = self._factors()
        shape = self.in_shape

        def Vt(x):
            return x.reshape(x.shape[0], -1).to(_promote(x, vh)) @ vh.to(x.device, _promote(x, vh)).T

        def V(c):
            return (c.to(_promote(c, vh)) @ vh.to(c.device, _promote(c, vh)).conj()).reshape(c.shape[0], *shape)

        def Ut(y):
            return y.to(_promote(y, u)) @ u.to(y.device, _promote(y, u)).conj()

        def U(c):
            return c.to(_promote(c, u)) @ u.to(c.device, _promote(c, u)).T

        return SVD(s, V, Vt, U, Ut)


def _promote(a: torch.Tensor, b: torch.Tensor) -> torch.dtype:
    """The precision of the input ``a`` (float32 stays float32), complex if either factor is."""
    if a.is_complex() or b.is_complex():
        return torch.complex128 if a.dtype in (torch.float64, torch.complex128) else torch.complex64
    return a.dtype
