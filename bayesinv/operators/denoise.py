"""Denoising: the identity operator ``A = I``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayesinv.operators.base import SVD, GramDiagonal, LinearOperator

__all__ = ["Identity"]


class Identity(LinearOperator):
    """``A x = x`` on images of shape ``in_shape`` (denoising).

    >>> import torch
    >>> op = Identity((1, 4, 4))
    >>> bool(torch.equal(op(torch.ones(2, 1, 4, 4)), torch.ones(2, 1, 4, 4)))
    True
    """

    def __init__(self, in_shape: Sequence[int], *, input_complex: bool = False):
        super().__init__(in_shape, in_shape, input_complex=input_complex, output_complex=input_complex)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()

    def _pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()

    def gram_diagonal(self) -> GramDiagonal | None:
        if self.input_complex:
            return None
        return GramDiagonal("pixel", torch.ones(self.in_shape, dtype=torch.float64, device=self.device))

    def svd(self) -> SVD:
        n = self.in_dim
        flat = lambda x: x.reshape(x.shape[0], -1)  # noqa: E731
        unflat = lambda c: c.reshape(c.shape[0], *self.in_shape)  # noqa: E731
        return SVD(torch.ones(n, dtype=torch.float64, device=self.device), unflat, flat, unflat, flat)
