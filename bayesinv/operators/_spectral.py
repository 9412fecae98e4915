"""Shared machinery of operators that are diagonal in a unitary basis (Fourier, pixels, pooling blocks).

Such an operator is ``A = U diag(s) V^H`` with ``V^H`` a fast unitary transform of the image (the
orthonormal 2-D DFT, the identity, ...) followed by a permutation that puts the coefficients with
positive singular values first. :func:`spectral_svd` assembles the :class:`~bayesinv.operators.base.SVD`
from these pieces and :func:`svd_pinv` applies ``A^+ = V diag(1/s) U^H``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bayesinv.operators.base import SVD

__all__ = ["permuted_layout", "complex_dtype", "to_complex", "fft2", "ifft2", "mirror_frequencies", "spectral_svd", "svd_pinv",
           "rank_tolerance"]


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype with the precision of ``dtype`` (float32 -> complex64, float64 -> complex128)."""
    if dtype.is_complex:
        return dtype
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def to_complex(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_complex() else x.to(complex_dtype(x.dtype))


def fft2(x: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
    """Orthonormal 2-D DFT over the last two dimensions; ``centred`` puts frequency 0 at ``(H//2, W//2)``."""
    k = torch.fft.fft2(x, norm="ortho")  # a real x is transformed as real (faster than promoting it first)
    return torch.fft.fftshift(k, dim=(-2, -1)) if centred else k


def ifft2(k: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
    """Inverse of :func:`fft2` (with the same ``centred`` layout)."""
    if centred:
        k = torch.fft.ifftshift(k, dim=(-2, -1))
    return torch.fft.ifft2(to_complex(k), norm="ortho")


def mirror_frequencies(values: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
    """``values`` at the opposite frequency, ``v(-k)``, over the last two dimensions (a k-space layout)."""
    if centred:
        values = torch.fft.ifftshift(values, dim=(-2, -1))
    out = torch.roll(torch.flip(values, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    return torch.fft.fftshift(out, dim=(-2, -1)) if centred else out


def rank_tolerance(singulars: torch.Tensor, size: int) -> float:
    """Singular values at or below ``max(s) * size * eps(float64)`` count as zero (as ``MatrixOperator``)."""
    if singulars.numel() == 0:
        return 0.0
    return float(singulars.max()) * size * torch.finfo(torch.float64).eps


def permuted_layout(perm: torch.Tensor, in_shape: Sequence[int]) -> tuple[Callable, Callable]:
    """``(Ut, U)`` for measurements laid out like the image (zeros where unobserved): ``Ut`` reads the
    observed entries in ``perm`` order (the first ``m`` spectral coefficients), ``U`` scatters them back."""

    def Ut(y):
        return y.reshape(y.shape[0], -1).index_select(1, perm.to(y.device))

    def U(c):
        return torch.empty_like(c).index_copy_(1, perm.to(c.device), c).reshape(c.shape[0], *in_shape)

    return Ut, U


def spectral_svd(*, singulars: torch.Tensor, perm: torch.Tensor, in_shape: Sequence[int],
                 transform: Callable[[torch.Tensor], torch.Tensor], inverse: Callable[[torch.Tensor], torch.Tensor],
                 Ut: Callable[[torch.Tensor], torch.Tensor], U: Callable[[torch.Tensor], torch.Tensor]) -> SVD:
    """An :class:`SVD` with ``V^H x = transform(x).flatten()[perm]`` and ``V c = inverse(scatter(c, perm))``.

    ``transform`` is a unitary map of images ``(B, *in_shape)`` to coefficients of the same shape,
    ``inverse`` its inverse; ``perm: (n,)`` puts the ``r = len(singulars)`` coefficients with positive
    singular values first, in the order ``Ut`` returns the measurement's coefficients.
    """
    in_shape = tuple(in_shape)
    perm = perm.to(torch.long)

    def Vt(x: torch.Tensor) -> torch.Tensor:
        coef = transform(x).reshape(x.shape[0], -1)
        return coef.index_select(1, perm.to(coef.device))

    def V(c: torch.Tensor) -> torch.Tensor:
        full = torch.empty_like(c).index_copy_(1, perm.to(c.device), c)  # scatter: faster than full[:, perm] = c
        return inverse(full.reshape(c.shape[0], *in_shape))

    return SVD(singulars, V, Vt, U, Ut)


def svd_pinv(svd: SVD, y: torch.Tensor, n: int, *, real: bool, cutoff: float = 0.0) -> torch.Tensor:
    """``A^+ y = V diag(1/s) U^H y`` (zero on the null space); the real part for operators on real images.

    ``cutoff > 0`` truncates: components with singular value ``s <= cutoff`` are treated as null space.
    """
    s = svd.singulars.to(device=y.device, dtype=y.real.dtype if y.is_complex() else y.dtype)
    r = s.shape[0]
    head = svd.Ut(y)[:, :r] * torch.where(s > cutoff, 1 / s, torch.zeros_like(s))
    coef = torch.zeros(y.shape[0], n, dtype=head.dtype, device=y.device)
    coef[:, :r] = head
    x = svd.V(coef)
    return x.real if (real and x.is_complex()) else x
