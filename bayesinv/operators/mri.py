r"""Accelerated MRI: undersampled Fourier measurements, single- and multi-coil, and sampling masks.

k-space is stored **centred** (frequency 0 at index ``(H//2, W//2)``, as after ``fftshift``) so that
masks read naturally: ``F x = fftshift(fft2(x, norm="ortho"))``, a unitary map.

* Single coil (:class:`MRI`): ``A x = M ⊙ F x``, the full k-space grid with zeros where ``M`` is
  False. ``A = U diag(s) V^H`` with ``V = F^H`` (permuted: sampled frequencies first), ``s = 1``,
  ``U`` a permutation, so DDRM applies (complex singular vectors for real images, see
  :mod:`bayesinv.samplers.ddrm`). On complex images ``A^+ = A^H = F^H M``.
* Multi-coil (:class:`MultiCoilMRI`, SENSE model, Pruessmann et al. 1999):
  ``A x = (M ⊙ F (S_c x))_{c=1..N}`` with coil sensitivity maps ``S_c``. No cheap SVD. For Cartesian
  masks (whole columns) the inverse DFT along H decouples the problem into one small dense system per
  image row, so ``pinv`` is exact (precomputed per-row pseudo-inverses); for other masks it is
  conjugate gradients on the normal equations ``A^H A x = A^H y`` (slow when ill-conditioned). With maps normalised so that
  ``sum_c |S_c|^2 = 1`` (:func:`simulate_coil_maps`), ``A^H A = sum_c S_c^H F^H M F S_c`` has its
  eigenvalues in ``[0, 1]`` (``||A|| <= 1``) and equals the identity when ``M`` samples everything
  (``A`` is then an isometry): undersampling turns it into a contraction, not in general a projection.

**Real images.** With ``input_complex=False`` (the default; phantoms are real) ``x`` is real and
the adjoint is the real-space one, ``A^T y = Re(A^H y)``. Then ``A^T A = F^H diag((M(k) + M(-k))/2) F``:
frequencies sampled together with their mirror ``-k`` count once, unpaired ones count half, so
the real-space ``pinv`` is ``F^H diag(2 / (M(k) + M(-k))) F A^T y`` (exact, cheap).

>>> import torch
>>> mask = cartesian_mask(8, 2, center_fraction=0.25, generator=torch.Generator().manual_seed(0))
>>> int(mask[0].sum()), bool(mask[:, 3:5].all())
(4, True)
>>> MRI((1, 8, 8), mask)(torch.ones(1, 1, 8, 8)).shape
torch.Size([1, 1, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bayesinv._validation import (check_choice, check_finite, check_image_shape, check_mask, check_positive,
                                  check_tensor)
from bayesinv.errors import DTypeError, ShapeError
from bayesinv.operators._spectral import complex_dtype, fft2, ifft2, mirror_frequencies, permuted_layout, spectral_svd
from bayesinv.operators.base import SVD, GramDiagonal, LinearOperator, conjugate_gradient

__all__ = ["MaskedFourier", "MRI", "MultiCoilMRI", "cartesian_mask", "simulate_coil_maps"]


class MaskedFourier(LinearOperator):
    """``x -> (F x)`` at the frequencies where ``mask`` is True (centred layout; see module docstring).

    ``output="kspace"``: the full grid ``M ⊙ F x`` (shape ``in_shape``); ``output="samples"``: the
    ``m`` sampled values only (shape ``(m,)``, in ``mask.flatten()`` order). Both are complex.
    """

    def __init__(self, in_shape: Sequence[int], mask: torch.Tensor, *, output: str = "kspace",
                 input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        check_choice("output", output, ("kspace", "samples"))
        self.register_tensor("mask", check_mask("mask", mask, in_shape).detach().cpu().contiguous())
        self.output = output
        flat = self.mask.reshape(-1)
        self.register_tensor("_sampled", flat.nonzero().flatten())
        self.register_tensor("_perm", torch.cat([self._sampled, (~flat).nonzero().flatten()]))
        out_shape = in_shape if output == "kspace" else (int(self._sampled.numel()),)
        super().__init__(in_shape, out_shape, input_complex=input_complex, output_complex=True)

    def _weights(self, like: torch.Tensor, *, shifted: bool = False) -> torch.Tensor:
        """The mask as 0/1 in ``like``'s real precision and device (cached); ``shifted``: in the uncentred
        (``fft2``) layout, i.e. ``ifftshift(mask)``."""
        dtype = like.real.dtype if like.is_complex() else like.dtype

        def build() -> torch.Tensor:
            mask = self.mask.to(device=like.device, dtype=dtype)
            return torch.fft.ifftshift(mask, dim=(-2, -1)) if shifted else mask

        return self._derived("shifted" if shifted else "weights", dtype, like.device, build, self.mask)

    def _index(self, like: torch.Tensor) -> torch.Tensor:
        sampled = self._sampled
        if sampled.device == like.device:
            return sampled
        return self._derived("index", sampled.dtype, like.device, lambda: sampled.to(like.device), sampled)

    def _embed(self, y: torch.Tensor) -> torch.Tensor:
        """Measurements -> the full masked k-space grid ``(B, *in_shape)``."""
        if self.output == "kspace":
            return y * self._weights(y)
        full = torch.zeros(y.shape[0], self.in_dim, dtype=y.dtype, device=y.device)
        full[:, self._index(y)] = y
        return full.reshape(y.shape[0], *self.in_shape)

    def _forward(self, x):
        if self.output == "kspace":  # mask in the uncentred layout, one shift of the masked result
            k = torch.fft.fft2(x, norm="ortho") * self._weights(x, shifted=True)
            return torch.fft.fftshift(k, dim=(-2, -1))
        k = fft2(x, centred=True)
        return k.reshape(x.shape[0], -1)[:, self._index(x)]

    def _adjoint(self, y):
        if self.output == "kspace":
            k = torch.fft.ifftshift(y, dim=(-2, -1)) * self._weights(y, shifted=True)
            return torch.fft.ifft2(k, norm="ortho")
        return ifft2(self._embed(y), centred=True)

    def _pinv(self, y):
        x = ifft2(self._embed(y), centred=True)
        if self.input_complex:
            return x
        weight = (self.mask.double() + mirror_frequencies(self.mask.double(), centred=True)) / 2
        inv = torch.where(weight > 0, 1.0 / weight.clamp_min(0.5), torch.zeros_like(weight))
        return ifft2(fft2(x.real, centred=True) * inv.to(device=y.device, dtype=x.real.dtype), centred=True).real

    def gram_diagonal(self) -> GramDiagonal | None:
        """On real images ``A^T A = F^H diag((M(k) + M(-k)) / 2) F`` (module docstring), in the uncentred layout."""
        if self.input_complex:
            return None
        mask = self.mask.to(torch.float64)
        weight = (mask + mirror_frequencies(mask, centred=True)) / 2
        return GramDiagonal("fourier", torch.fft.ifftshift(weight, dim=(-2, -1)).expand(self.in_shape))

    def svd(self) -> SVD:
        perm = self._perm
        m = int(self._sampled.numel())
        Ut, U = permuted_layout(perm, self.in_shape) if self.output == "kspace" else (_identity, _identity)

        return spectral_svd(singulars=torch.ones(m, dtype=torch.float64, device=perm.device), perm=perm,
                            in_shape=self.in_shape,
                            transform=lambda x: fft2(x, centred=True), inverse=lambda k: ifft2(k, centred=True),
                            Ut=Ut, U=U)

    @property
    def acceleration(self) -> float:
        """``n / m``: how many times fewer samples than pixels."""
        return self.in_dim / max(int(self._sampled.numel()), 1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(in_shape={self.in_shape}, sampled={int(self._sampled.numel())}/{self.in_dim}, "
                f"output={self.output!r})")


class MRI(MaskedFourier):
    """Single-coil MRI ``A x = M ⊙ F x`` (full k-space grid, zeros where not sampled).

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``.
    mask : boolean ``(H, W)`` or ``(C, H, W)`` in centred k-space (e.g. :func:`cartesian_mask`).
    input_complex : complex images (real images are the default; see the module docstring).
    """

    def __init__(self, in_shape: Sequence[int], mask: torch.Tensor, *, input_complex: bool = False):
        super().__init__(in_shape, mask, output="kspace", input_complex=input_complex)


def cartesian_mask(size: int | Sequence[int], acceleration: float, center_fraction: float = 0.08, *,
                   kind: str = "random", generator: torch.Generator | None = None) -> torch.Tensor:
    """Cartesian undersampling mask ``(H, W)``: whole k-space columns (phase-encoding lines), centred layout.

    ``round(W / acceleration)`` columns in all: the ``round(W * center_fraction)`` (at least 1) central
    ones (the fully sampled low frequencies), plus the rest among the outer columns, either uniformly
    at random (``kind="random"``) or equispaced with a random offset (``kind="equispaced"``), as in
    the fastMRI masks (Zbontar et al. 2018) but with an exact line count.
    """
    h, w = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    check_positive("size", min(h, w), integer=True)
    check_choice("kind", kind, ("random", "equispaced"))
    if not isinstance(acceleration, (int, float)) or not 1 <= acceleration <= w:
        raise ValueError(f"acceleration must be a number in [1, W={w}], got {acceleration!r}")
    if not isinstance(center_fraction, (int, float)) or not 0 <= center_fraction <= 1:
        raise ValueError(f"center_fraction must be in [0, 1], got {center_fraction!r}")
    total = max(1, round(w / acceleration))
    num_center = max(1, round(w * center_fraction))
    if num_center > total:
        raise ValueError(f"center_fraction={center_fraction} asks for {num_center} central lines but "
                         f"acceleration={acceleration} allows only {total} of W={w}; lower center_fraction")
    start = w // 2 - num_center // 2
    lines = torch.zeros(w, dtype=torch.bool)
    lines[start : start + num_center] = True
    outer = (~lines).nonzero().flatten()
    extra = total - num_center
    if extra:
        if kind == "random":
            chosen = outer[torch.randperm(outer.numel(), generator=generator)[:extra]]
        else:
            spacing = outer.numel() / extra
            offset = float(torch.rand((), generator=generator, dtype=torch.float64)) * spacing
            chosen = outer[(offset + spacing * torch.arange(extra, dtype=torch.float64)).floor().long()]
        lines[chosen] = True
    return lines.expand(h, w).clone()


def simulate_coil_maps(num_coils: int, size: int | Sequence[int], *, width: float = 0.6,
                       dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    r"""Smooth complex coil sensitivities ``(N, H, W)`` with ``sum_c |S_c|^2 = 1`` at every pixel.

    Coil ``c`` sits at angle ``2 pi c / N`` on a circle of radius 1.5 around the image (coordinates in
    ``[-1, 1]``); its magnitude decays as ``exp(-d^2 / (2 width^2))`` with the distance ``d`` to the coil
    and its phase ramps linearly along the coil's direction (``pi`` over the image) plus an offset
    ``2 pi c / N``. The maps are then divided by ``sqrt(sum_c |S_c|^2)``. Deterministic.

    >>> maps = simulate_coil_maps(4, 8)
    >>> maps.shape, bool(torch.allclose((maps.abs() ** 2).sum(0), torch.ones(8, 8, dtype=torch.float64)))
    (torch.Size([4, 8, 8]), True)
    """
    check_positive("num_coils", num_coils, integer=True)
    check_positive("width", width)
    h, w = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    check_positive("size", min(h, w), integer=True)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64), torch.linspace(-1, 1, w, dtype=torch.float64),
                            indexing="ij")
    angles = 2 * math.pi * torch.arange(num_coils, dtype=torch.float64) / num_coils
    cx, cy = 1.5 * torch.cos(angles), 1.5 * torch.sin(angles)
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    magnitude = torch.exp(-d2 / (2 * width**2))
    phase = math.pi / 2 * (xx[None] * torch.cos(angles)[:, None, None] + yy[None] * torch.sin(angles)[:, None, None])
    maps = torch.polar(magnitude, phase + angles[:, None, None])
    maps = maps / (maps.abs() ** 2).sum(dim=0, keepdim=True).sqrt()
    return maps.to(dtype)


class MultiCoilMRI(LinearOperator):
    """Multi-coil (SENSE) MRI ``A x = (M ⊙ F (S_c x))_c``: measurements ``(N, C, H, W)`` complex.

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``.
    mask : boolean ``(H, W)`` or ``(C, H, W)``, centred k-space.
    coil_maps : complex ``(N, H, W)`` sensitivities (an explicit tensor: it may be estimated or inferred).
    input_complex : complex images (real by default).
    """

    def __init__(self, in_shape: Sequence[int], mask: torch.Tensor, coil_maps: torch.Tensor, *,
                 input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        self.register_tensor("mask", check_mask("mask", mask, in_shape).detach().cpu().contiguous())
        check_tensor("coil_maps", coil_maps)
        c, h, w = in_shape
        if coil_maps.ndim != 3 or tuple(coil_maps.shape[1:]) != (h, w):
            raise ShapeError(f"coil_maps must have shape (N, {h}, {w}) to match the image shape {in_shape}, "
                             f"got {tuple(coil_maps.shape)}")
        if not (coil_maps.is_complex() or coil_maps.is_floating_point()):
            raise DTypeError(f"coil_maps must be a complex (or real floating) tensor, got {coil_maps.dtype}")
        check_finite("coil_maps", coil_maps)
        self.register_tensor("coil_maps", coil_maps)
        self._pinv_cache: torch.Tensor | None = None
        super().__init__(in_shape, (coil_maps.shape[0], c, h, w), input_complex=input_complex, output_complex=True)

    def _tensors_changed(self) -> None:
        self._pinv_cache = None

    @property
    def num_coils(self) -> int:
        return self.coil_maps.shape[0]

    def _maps(self, like: torch.Tensor) -> torch.Tensor:
        dtype = complex_dtype(like.real.dtype if like.is_complex() else like.dtype)
        return self._derived("maps", dtype, like.device,  # (1, N, 1, H, W)
                             lambda: self.coil_maps.to(device=like.device, dtype=dtype)[None, :, None], self.coil_maps)

    def _weights(self, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        return self._derived("weights", dtype, like.device, lambda: self.mask.to(device=like.device, dtype=dtype),
                             self.mask)

    def _forward(self, x):
        return fft2(x[:, None] * self._maps(x), centred=True) * self._weights(x)

    def _adjoint(self, y):
        coil_images = ifft2(y * self._weights(y), centred=True)
        return (coil_images * self._maps(y).conj()).sum(dim=1)

    @property
    def is_cartesian(self) -> bool:
        """Whether the mask samples whole columns (constant along H), so the problem decouples by image row."""
        return bool((self.mask == self.mask[:, :1]).all())

    def _row_pinvs(self) -> torch.Tensor:
        """Per channel and image row, the pseudo-inverse of that row's dense ``(N W, W)`` system (Cartesian masks).

        With whole k-space columns sampled, the 1-D DFT along H is complete and unitary: undoing it turns
        ``y`` into ``(M_w F_W (S_c[r] ⊙ x[r]))_c`` for every image row ``r``, a small dense system per row.
        For real images the system is stacked as real and imaginary parts (the real-space least squares).
        """
        if self._pinv_cache is None:
            c, h, w = self.in_shape
            maps = self.coil_maps.detach().to(torch.complex128)  # (N, H, W)
            dft = torch.fft.fftshift(torch.fft.fft(torch.eye(w, dtype=torch.complex128, device=maps.device),
                                                   norm="ortho"), dim=0)
            mats = []
            for ch in range(c):
                cols = self.mask[ch, 0].to(torch.complex128)  # (W,) sampled columns
                # rows of the system for image row r: coil n, frequency k -> cols[k] * sum_j dft[k, j] S_n[r, j] x_j
                system = cols[None, None, :, None] * dft[None, None] * maps.permute(1, 0, 2)[:, :, None, :]
                system = system.reshape(h, -1, w)  # (H, N W, W)
                if not self.input_complex:
                    system = torch.cat([system.real, system.imag], dim=1)  # (H, 2 N W, W) real
                mats.append(torch.linalg.pinv(system))
            self._pinv_cache = torch.stack(mats)  # (C, H, W, N W) or (C, H, W, 2 N W)
        return self._pinv_cache

    def _pinv(self, y):
        if not self.is_cartesian:
            return conjugate_gradient(self.normal, self.adjoint(y), max_iter=4 * self.in_dim, rtol=1e-12)
        pinvs = self._row_pinvs()
        # undo the (centred) DFT along H: per coil, channel and image row, the row's W-point k-space
        rows = torch.fft.ifft(torch.fft.ifftshift(y * self.mask.to(y.device), dim=-2), dim=-2, norm="ortho")
        rows = rows.permute(0, 2, 3, 1, 4).reshape(y.shape[0], *self.in_shape[:2], -1)  # (B, C, H, N W)
        if not self.input_complex:
            rows = torch.cat([rows.real, rows.imag], dim=-1)
        mats = pinvs.to(device=y.device, dtype=rows.dtype)
        return torch.einsum("chwk,bchk->bchw", mats, rows)

    def __repr__(self) -> str:
        return (f"MultiCoilMRI(in_shape={self.in_shape}, coils={self.num_coils}, "
                f"sampled={int(self.mask.sum())}/{self.mask.numel()})")


def _identity(v: torch.Tensor) -> torch.Tensor:
    return v
