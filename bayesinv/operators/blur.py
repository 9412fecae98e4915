r"""Deblurring: circular convolution ``A x = k * x`` computed with the FFT, and blur kernels.

With periodic boundaries the convolution is diagonal in the orthonormal 2-D Fourier basis ``F``::

    A = F^H diag(h) F,   h = DFT(k placed at the origin),   A^H = F^H diag(conj h) F

so the SVD is cheap: ``s = |h|``, ``V = F^H`` (up to a permutation), ``U = F^H diag(h / |h|)``. The
singular vectors are complex even for real images; DDRM (Kawar et al. 2022) uses them as they are and
keeps the real part of its images (see :mod:`bayesinv.samplers.ddrm`). The kernel's centre is at index
``(kh // 2, kw // 2)``, so ``Blur(shape, k)(x)`` equals ``scipy.ndimage.convolve(x, k, mode="wrap")``.

**Blind deblurring.** The kernel is an ordinary tensor and every step is differentiable, so the
kernel (or the width of a Gaussian kernel) can be a latent variable:
``InverseProblem(lambda width: Blur.gaussian(shape, width), noise, prior,
nuisance={"width": dist.Uniform(0.5, 3.0)})``. A batch of kernels ``(K, kh, kw)`` (from a batch of
widths ``(K,)``, one per chain) blurs the matching item of a batch of ``K`` images.

>>> import torch
>>> op = Blur.gaussian((1, 8, 8), 1.0)
>>> x = torch.zeros(1, 1, 8, 8, dtype=torch.float64); x[0, 0, 4, 4] = 1.0
>>> round(float(op(x).sum()), 12), tuple(op.kernel.shape)
(1.0, (7, 7))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bayesinv._validation import check_finite, check_image_shape, check_positive, check_tensor
from bayesinv.errors import DTypeError, ShapeError
from bayesinv.operators._spectral import complex_dtype, fft2, ifft2, rank_tolerance, spectral_svd
from bayesinv.operators.base import SVD, GramDiagonal, LinearOperator

__all__ = ["Blur", "gaussian_kernel", "uniform_kernel", "motion_kernel", "default_gaussian_size"]


def _as_std(std) -> torch.Tensor:
    value = std if isinstance(std, torch.Tensor) else torch.tensor(float(std), dtype=torch.float64)
    if value.is_complex() or not value.is_floating_point():
        raise DTypeError(f"std must be a real floating-point number or tensor, got {value.dtype}")
    if value.ndim > 1:
        raise ShapeError(f"std must be a scalar or a 1-D tensor (one width per kernel), got shape {tuple(value.shape)}")
    check_finite("std", value)
    if bool((value.detach() < 0).any()):
        raise ValueError(f"std must be non-negative, got min {float(value.detach().min())}")
    return value


def default_gaussian_size(std, limit: int | None = None) -> int:
    """Odd kernel size ``2 ceil(4 std) + 1`` (the largest std of a batch), at most the largest odd ``<= limit``."""
    largest = float(_as_std(std).detach().max())
    size = 2 * math.ceil(4 * largest) + 1
    if limit is not None:
        size = min(size, limit if limit % 2 else limit - 1)
    return max(size, 1)


def gaussian_kernel(size: int, std: float | torch.Tensor) -> torch.Tensor:
    r"""Normalised Gaussian kernel ``k(i, j) ∝ exp(-(i^2 + j^2) / (2 std^2))`` on an odd ``size x size`` grid.

    ``std`` is a float, a scalar tensor or a ``(K,)`` tensor (then the result is ``(K, size, size)``).
    It may require grad (blind deblurring). ``std = 0`` gives the discrete Dirac (the identity blur)
    exactly, and the kernel is continuous in ``std`` down to 0.

    >>> gaussian_kernel(3, 0.0).tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    check_positive("size", size, integer=True)
    if size % 2 == 0:
        raise ValueError(f"size of a Gaussian kernel must be odd (a centred kernel), got {size}")
    std = _as_std(std)
    r = torch.arange(size, dtype=std.dtype, device=std.device) - (size - 1) / 2
    r2 = r[:, None] ** 2 + r[None, :] ** 2
    var2 = (2 * std.reshape(-1, 1, 1) ** 2).clamp_min(torch.finfo(std.dtype).tiny)
    k = torch.exp(-r2 / var2)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    return k[0] if std.ndim == 0 else k


def uniform_kernel(size: int) -> torch.Tensor:
    """Box kernel: ``size x size`` entries equal to ``1 / size^2`` (float64).

    >>> float(uniform_kernel(3).sum())
    1.0
    """
    check_positive("size", size, integer=True)
    return torch.full((size, size), 1.0 / size**2, dtype=torch.float64)


def motion_kernel(size: int, angle: float, length: float) -> torch.Tensor:
    """Linear motion blur: a segment of ``length`` pixels through the centre at ``angle`` degrees.

    The segment (counter-clockwise from the +x axis; rows grow downwards) is sampled at 20 points per
    pixel, each point spread bilinearly over its four neighbouring pixels; the kernel is normalised to
    sum 1. Deterministic. ``length = 0`` gives the Dirac.

    >>> k = motion_kernel(5, 0.0, 4.0)
    >>> k.sum(dim=1).nonzero().flatten().tolist(), round(float(k.sum()), 12)
    ([2], 1.0)
    """
    check_positive("size", size, integer=True)
    check_positive("length", length, strict=False)
    if length > size - 1:
        raise ValueError(f"length must be at most size - 1 = {size - 1} pixels, got {length}")
    c = (size - 1) / 2
    num = max(2, int(math.ceil(20 * length)) + 1)
    t = torch.linspace(-length / 2, length / 2, num, dtype=torch.float64)
    theta = math.radians(float(angle))
    cols, rows = c + t * math.cos(theta), c - t * math.sin(theta)
    k = torch.zeros(size + 1, size + 1, dtype=torch.float64)
    r0, c0 = rows.floor(), cols.floor()
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0.long(), c0.long()
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            k.index_put_((r0 + dr, c0 + dc), wr * wc, accumulate=True)
    k = k[:size, :size]
    return k / k.sum()


class Blur(LinearOperator):
    """Circular convolution of each channel with ``kernel`` (see module docstring).

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``; the output has the same shape.
    kernel : real ``(kh, kw)`` with ``kh <= H, kw <= W`` (centre at ``(kh//2, kw//2)``), or ``(K, kh, kw)``
        for a batch of kernels applied to batches of ``K`` images (then ``svd()``/``to_matrix()`` are
        undefined). May require grad.
    input_complex : act on complex images (the output is then complex too).
    """

    def __init__(self, in_shape: Sequence[int], kernel: torch.Tensor, *, input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        check_tensor("kernel", kernel)
        if kernel.ndim not in (2, 3):
            raise ShapeError(f"kernel must have shape (kh, kw) or (K, kh, kw), got {tuple(kernel.shape)}")
        if kernel.is_complex() or not kernel.is_floating_point():
            raise DTypeError(f"kernel must be a real floating-point tensor, got {kernel.dtype}")
        _, h, w = in_shape
        if kernel.shape[-2] > h or kernel.shape[-1] > w:
            raise ShapeError(f"kernel of size {tuple(kernel.shape[-2:])} is larger than the image ({h}, {w}); "
                             f"expected kh <= {h} and kw <= {w}")
        check_finite("kernel", kernel)
        super().__init__(in_shape, in_shape, input_complex=input_complex, output_complex=input_complex)
        self.register_tensor("kernel", kernel)

    @classmethod
    def gaussian(cls, in_shape: Sequence[int], std: float | torch.Tensor, size: int | None = None, *,
                 input_complex: bool = False) -> Blur:
        """Gaussian blur of width ``std`` (float, scalar or ``(K,)`` tensor; 0 = identity), see :func:`gaussian_kernel`.

        ``size`` defaults to :func:`default_gaussian_size` (at most the image size); pass it explicitly
        when ``std`` varies continuously (blind deblurring, degradation schedules) so the grid stays fixed.
        """
        in_shape = check_image_shape("in_shape", in_shape)
        if size is None:
            size = default_gaussian_size(std, min(in_shape[1:]))
        return cls(in_shape, gaussian_kernel(size, std), input_complex=input_complex)

    @property
    def num_kernels(self) -> int:
        return 1 if self.kernel.ndim == 2 else self.kernel.shape[0]

    def transfer(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        """Eigenvalues ``h = DFT(k)`` of the circulant operator: ``(H, W)`` or ``(K, H, W)`` complex."""
        return torch.fft.fft2(self._padded_kernel(dtype, device))

    def _padded_kernel(self, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """The kernel zero-padded to the image and rolled so that its centre sits at index (0, 0)."""
        _, h, w = self.in_shape
        k = self.kernel.to(device=device, dtype=dtype)
        kh, kw = k.shape[-2:]
        padded = F.pad(k, (0, w - kw, 0, h - kh))
        return torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))

    def _transfer_for(self, x: torch.Tensor, *, half: bool = False) -> torch.Tensor:
        """The transfer function in ``x``'s precision and device, cached; ``half``: the ``rfft2`` half-spectrum."""
        real_dtype = x.real.dtype if x.is_complex() else x.dtype
        if self.num_kernels > 1 and self.num_kernels != x.shape[0]:
            raise ShapeError(f"this Blur has {self.num_kernels} kernels but x has batch size {x.shape[0]}; "
                             f"expected batch size {self.num_kernels}")

        def build() -> torch.Tensor:
            padded = self._padded_kernel(real_dtype, x.device)
            h = torch.fft.rfft2(padded) if half else torch.fft.fft2(padded)
            return h[:, None] if h.ndim == 3 else h

        return self._derived("rtransfer" if half else "transfer", real_dtype, x.device, build, self.kernel)

    def _dirac(self) -> torch.Tensor | None:
        """Per kernel: is it exactly the Dirac (then ``A = I`` and the FFT round trip is skipped, so it is exact)?
        ``None`` when no kernel is (computed once per kernel, so no host synchronisation per call)."""

        def build() -> torch.Tensor:
            k = self.kernel.detach().reshape(-1, *self.kernel.shape[-2:])
            centre = k[:, k.shape[1] // 2, k.shape[2] // 2]
            dirac = (centre == 1) & ((k != 0).reshape(k.shape[0], -1).sum(dim=1) == 1)
            return dirac if bool(dirac.any()) else torch.zeros(0, dtype=torch.bool, device=k.device)

        if self.kernel.is_meta:  # shapes only (no values to inspect)
            return None
        dirac = self._derived("dirac", self.kernel.dtype, self.kernel.device, build, self.kernel, on_graph=False)
        return dirac if dirac.numel() else None

    def _apply(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``F^-1 (h F x)``: with ``rfft2`` when ``x`` is real and ``h`` the half-spectrum, else the full FFT."""
        if not x.is_complex() and h.shape[-1] != x.shape[-1]:
            out = torch.fft.irfft2(h * torch.fft.rfft2(x), s=x.shape[-2:])
        else:
            out = ifft2(h * fft2(x))
            out = out if self.input_complex else out.real
        dirac = self._dirac()
        if dirac is not None:
            out = torch.where(dirac.to(x.device).reshape(-1, *(1,) * (x.ndim - 1)), x.to(out.dtype), out)
        return out

    def _forward(self, x):
        return self._apply(x, self._transfer_for(x, half=not x.is_complex()))

    def _adjoint(self, y):
        return self._apply(y, self._transfer_for(y, half=not y.is_complex()).conj())

    def _pinv(self, y):
        h = self._transfer_for(y, half=not y.is_complex())
        mag = h.abs()
        tol = mag.amax(dim=(-2, -1), keepdim=True) * self.in_dim * torch.finfo(torch.float64).eps
        inv = torch.where(mag > tol, h.conj() / (mag**2).clamp_min(torch.finfo(mag.dtype).tiny), torch.zeros_like(h))
        return self._apply(y, inv)

    def to_matrix(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
        if self.num_kernels > 1:
            raise ValueError(f"to_matrix() needs a single kernel; this Blur has a batch of {self.num_kernels}")
        return super().to_matrix(dtype, device)

    def gram_diagonal(self) -> GramDiagonal | None:
        """``A^T A = F^H diag(|h|^2) F`` (one kernel, real images; ``|h(k)| = |h(-k)|`` for a real kernel)."""
        if self.input_complex or self.num_kernels != 1 or self.kernel.is_meta:
            return None
        power = torch.fft.fft2(self._padded_kernel(torch.float64, self.kernel.device)).abs() ** 2
        return GramDiagonal("fourier", power.reshape(self.in_shape[-2:]).expand(self.in_shape))

    def svd(self) -> SVD:
        if self.num_kernels > 1:
            raise NotImplementedError(f"svd() needs a single kernel; this Blur has a batch of {self.num_kernels}")
        c, _, _ = self.in_shape
        h = self.transfer(torch.float64).detach().reshape(-1, *self.in_shape[1:])[0]
        mags = h.abs().expand(c, *h.shape).reshape(-1)
        phase = torch.where(h.abs() > 0, h / h.abs().clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(h))
        perm = torch.argsort(mags, descending=True, stable=True)
        r = int((mags > rank_tolerance(mags, self.in_dim)).sum())
        inv_perm = torch.argsort(perm)

        def Ut(y):
            k = fft2(y)
            coef = (k * phase.to(device=k.device, dtype=k.dtype).conj()).reshape(y.shape[0], -1)
            return coef[:, perm.to(y.device)]

        def U(coef):
            full = coef[:, inv_perm.to(coef.device)].reshape(coef.shape[0], *self.in_shape)
            full = full.to(complex_dtype(full.dtype))
            return ifft2(full * phase.to(device=full.device, dtype=full.dtype))

        return spectral_svd(singulars=mags[perm][:r], perm=perm, in_shape=self.in_shape, transform=fft2,
                            inverse=ifft2, Ut=Ut, U=U)

    def __repr__(self) -> str:
        return f"Blur(in_shape={self.in_shape}, kernel={tuple(self.kernel.shape)})"
