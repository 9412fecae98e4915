r"""Super-resolution: average pooling by an integer ``factor`` (``f``).

``A x`` averages each non-overlapping ``f x f`` block of every channel, ``(C, H, W) -> (C, H/f, W/f)``.
Each output pixel is the inner product of its block with the constant vector ``1/f^2``, of norm
``1/f``, and blocks do not overlap, so ``A A^H = I / f^2`` and the SVD is block-diagonal:
``s = 1/f`` for every output pixel, ``U = I``, and the columns of ``V`` are, per block, an orthonormal
basis whose first vector is the constant ``1/f`` (the rest span the zero-mean patterns of the block,
the null space). Hence ``A^+ = f^2 A^H``: nearest-neighbour upsampling. This is the ``SuperResolution``
operator of DDRM (Kawar et al. 2022).

>>> import torch
>>> op = SuperResolution((1, 4, 4), 2)
>>> op(torch.arange(16.0).reshape(1, 1, 4, 4)).tolist()
[[[[2.5, 4.5], [10.5, 12.5]]]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayesinv._validation import check_image_shape, check_positive
from bayesinv.errors import ShapeError
from bayesinv.operators._spectral import spectral_svd
from bayesinv.operators.base import SVD, LinearOperator

__all__ = ["SuperResolution", "block_basis"]


def block_basis(factor: int) -> torch.Tensor:
    """Orthonormal ``(f^2, f^2)`` matrix (float64) whose first column is the constant ``1/f``."""
    k = factor * factor
    seed = torch.eye(k, dtype=torch.float64, device="cpu")
    seed[:, 0] = 1.0
    q, _ = torch.linalg.qr(seed)
    return q * torch.sign(q[0, 0])


class SuperResolution(LinearOperator):
    """``f x f`` average pooling of images ``(C, H, W)`` with ``H`` and ``W`` divisible by ``factor``.

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``.
    factor : the integer downsampling factor ``f >= 1``.
    input_complex : act on complex images.
    """

    def __init__(self, in_shape: Sequence[int], factor: int, *, input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        check_positive("factor", factor, integer=True)
        c, h, w = in_shape
        if h % factor or w % factor:
            raise ShapeError(f"factor={factor} must divide the image size (H, W) = ({h}, {w})")
        super().__init__(in_shape, (c, h // factor, w // factor), input_complex=input_complex,
                         output_complex=input_complex)
        self.factor = factor
        self.register_tensor("_basis", block_basis(factor))

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H/f, W/f, f*f)``."""
        c, h, w = self.in_shape
        f = self.factor
        return x.reshape(x.shape[0], c, h // f, f, w // f, f).permute(0, 1, 2, 4, 3, 5).reshape(
            x.shape[0], c, h // f, w // f, f * f)

    def _unblocks(self, b: torch.Tensor) -> torch.Tensor:
        c, h, w = self.in_shape
        f = self.factor
        return b.reshape(b.shape[0], c, h // f, w // f, f, f).permute(0, 1, 2, 4, 3, 5).reshape(b.shape[0], c, h, w)

    def _forward(self, x):
        return self._blocks(x).mean(dim=-1)

    def _adjoint(self, y):
        f2 = self.factor**2
        return self._unblocks((y / f2).unsqueeze(-1).expand(*y.shape, f2))

    def _pinv(self, y):
        return self.factor**2 * self._adjoint(y)

    def svd(self) -> SVD:
        m, f2 = self.out_dim, self.factor**2
        # coefficient of block b along basis vector j sits at flat index b * f^2 + j; the block means go first
        basis = self._basis
        perm = torch.arange(m * f2, device=basis.device).reshape(m, f2).T.reshape(-1)

        def transform(x):
            return self._blocks(x) @ basis.to(device=x.device, dtype=x.dtype)

        def inverse(coef):
            blocks = coef.reshape(coef.shape[0], *self.out_shape, f2)
            return self._unblocks(blocks @ basis.to(device=coef.device, dtype=coef.dtype).T)

        def Ut(y):
            return y.reshape(y.shape[0], -1)

        def U(coef):
            return coef.reshape(coef.shape[0], *self.out_shape)

        singulars = torch.full((m,), 1.0 / self.factor, dtype=torch.float64, device=basis.device)
        return spectral_svd(singulars=singulars, perm=perm, in_shape=self.in_shape, transform=transform,
                            inverse=inverse, Ut=Ut, U=U)

    def __repr__(self) -> str:
        return f"SuperResolution(in_shape={self.in_shape}, factor={self.factor})"
