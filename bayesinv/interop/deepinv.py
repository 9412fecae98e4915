"""Hand a deepinv physics to a bayesinv sampler, and a bayesinv operator to deepinv (optional extra).

deepinv (Tachella et al., https://deepinv.github.io) is what many users of this field already use.
Four families map one to one (checked against deepinv 0.5.0 in ``tests/integrations/test_deepinv.py``):

=======================================  ======================================================
deepinv physics                          bayesinv operator
=======================================  ======================================================
``BlurFFT(img_size, filter)``            :class:`~bayesinv.operators.Blur` (circular convolution)
``Inpainting(img_size, mask)``           :class:`~bayesinv.operators.Inpaint` (``output="image"``)
``MRI(mask)`` (single coil)              :class:`CentredImageMRI` (complex images)
``CompressedSensing(m, img_size)``       :class:`~bayesinv.operators.MatrixOperator`
=======================================  ======================================================

MRI differs in two places. Layout: deepinv takes complex images as two real channels
``(B, 2, H, W)`` (real, imaginary) and returns k-space the same way, while bayesinv uses complex
tensors ``(B, 1, H, W)``; :func:`complex_to_channels` and :func:`channels_to_complex` convert.
Convention: both use the orthonormal DFT with frequency 0 at ``(H//2, W//2)``, but deepinv (like
fastMRI) also puts the image origin at the centre, ``A x = M ⊙ fftshift(F(ifftshift(x)))``, while
:class:`~bayesinv.operators.MRI` computes ``M ⊙ fftshift(F(x))``; the two differ by a unit-modulus
phase per frequency (a sign ``(-1)^(u+v)`` for even sizes). :class:`CentredImageMRI` is bayesinv's
MRI with deepinv's convention (same SVD, so DDRM and exact posteriors still work); a plain
:class:`~bayesinv.operators.MRI` goes to deepinv as a ``LinearPhysics`` computing its own ``A``.
Blur filters are the same array in both (deepinv's ``filter[0, c]`` is bayesinv's ``kernel``; same
centre, convolution in both).

Installing: ``pip install "bayesinv[deepinv]"``. This module imports deepinv only when
:func:`to_deepinv` is called; :func:`from_deepinv` reads the physics' tensors and needs no import.
"""

from __future__ import annotations

from typing import Any

import torch

from bayesinv.errors import ShapeError
from bayesinv.operators import MRI, SVD, Blur, Inpaint, LinearOperator, MatrixOperator

__all__ = ["from_deepinv", "to_deepinv", "complex_to_channels", "channels_to_complex", "CentredImageMRI"]

_DIMS = (-2, -1)


class CentredImageMRI(MRI):
    """Single-coil MRI with the image origin at the centre (deepinv's and fastMRI's convention).

    ``A x = M ⊙ fftshift(F(ifftshift(x)))`` with the orthonormal DFT ``F``: :class:`~bayesinv.operators.MRI`
    composed with the unitary ``ifftshift`` of the image, so ``A^H = fftshift ∘ MRI^H`` and the SVD is
    MRI's with the right factor shifted. Complex images only (``input_complex=True``).

    >>> import torch
    >>> mask = torch.zeros(4, 4, dtype=torch.bool); mask[:, 1:3] = True
    >>> op = CentredImageMRI((1, 4, 4), mask)
    >>> x = torch.randn(1, 1, 4, 4, dtype=torch.complex128)
    >>> bool(torch.allclose(op(x), MRI((1, 4, 4), mask, input_complex=True)(torch.fft.ifftshift(x, dim=(-2, -1)))))
    True
    """

    def __init__(self, in_shape, mask: torch.Tensor):
        super().__init__(in_shape, mask, input_complex=True)

    def _forward(self, x):
        return super()._forward(torch.fft.ifftshift(x, dim=_DIMS))

    def _adjoint(self, y):
        return torch.fft.fftshift(super()._adjoint(y), dim=_DIMS)

    def _pinv(self, y):
        return torch.fft.fftshift(super()._pinv(y), dim=_DIMS)

    def svd(self) -> SVD:
        inner = super().svd()
        return SVD(singulars=inner.singulars, U=inner.U, Ut=inner.Ut,
                   V=lambda z: torch.fft.fftshift(inner.V(z), dim=_DIMS),
                   Vt=lambda x: inner.Vt(torch.fft.ifftshift(x, dim=_DIMS)))


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """bayesinv complex ``(B, 1, H, W)`` -> deepinv real ``(B, 2, H, W)`` (real, imaginary)."""
    if not x.is_complex() or x.ndim != 4 or x.shape[1] != 1:
        raise ShapeError(f"expected a complex tensor (B, 1, H, W), got {x.dtype} {tuple(x.shape)}")
    return torch.cat([x.real, x.imag], dim=1)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """deepinv real ``(B, 2, H, W)`` -> bayesinv complex ``(B, 1, H, W)``."""
    if x.is_complex() or x.ndim != 4 or x.shape[1] != 2:
        raise ShapeError(f"expected a real tensor (B, 2, H, W) (real, imaginary channels), "
                         f"got {x.dtype} {tuple(x.shape)}")
    return torch.complex(x[:, :1], x[:, 1:])


def _binary_mask(name: str, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.detach().cpu()
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name}: only binary (0/1) masks have a bayesinv counterpart; this mask has other values")
    return mask.bool()


def _img_size(physics: Any) -> tuple[int, int, int]:
    size = tuple(int(s) for s in physics.img_size)
    if len(size) != 3:
        raise ShapeError(f"{type(physics).__name__}.img_size must be (C, H, W), got {size}")
    return size  # type: ignore[return-value]


def from_deepinv(physics: Any) -> LinearOperator:
    """The bayesinv operator computing the same ``A`` as a deepinv physics (see the module table).

    Raises ``TypeError`` for physics outside the table and ``ValueError``/``ShapeError`` for settings
    without a bayesinv counterpart (a per-channel blur filter, a non-binary mask, a 3-D MRI, a
    channel-wise compressed-sensing matrix). The returned operator copies the physics' tensors.
    """
    kind = type(physics).__name__
    if kind == "BlurFFT":
        size = _img_size(physics)
        kernel = physics.filter
        if kernel is None or kernel.ndim != 4 or kernel.shape[0] != 1 or not all(
                torch.equal(kernel[0, 0], kernel[0, c]) for c in range(kernel.shape[1])):
            raise ShapeError(f"BlurFFT.filter must be one filter shared by all channels, (1, 1 or C, h, w) with equal "
                             f"channels, got {None if kernel is None else tuple(kernel.shape)}")
        return Blur(size, kernel[0, 0].detach().clone())
    if kind == "Inpainting":
        size = _img_size(physics)
        mask = _binary_mask("Inpainting.mask", physics.mask)
        mask = mask.reshape(mask.shape[-3:] if mask.ndim >= 3 else mask.shape)
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        return Inpaint(size, mask)
    if kind == "MRI":
        mask = _binary_mask("MRI.mask", physics.mask)
        if mask.ndim != 4 or mask.shape[0] != 1 or mask.shape[1] != 2 or not torch.equal(mask[0, 0], mask[0, 1]):
            raise ShapeError(f"only a 2-D single-coil MRI mask (1, 2, H, W) with equal channels maps to bayesinv; got "
                             f"{tuple(mask.shape)}")
        h, w = mask.shape[-2:]
        return CentredImageMRI((1, h, w), mask[0, 0])
    if kind == "CompressedSensing":
        if physics.channelwise:
            raise ValueError("CompressedSensing(channelwise=True) applies one matrix per channel; only "
                             "channelwise=False (one matrix on the flattened image) maps to MatrixOperator")
        return MatrixOperator(physics._A.detach().clone(), _img_size(physics))
    raise TypeError(f"from_deepinv supports BlurFFT, Inpainting, MRI and CompressedSensing, got {kind}")


def to_deepinv(operator: LinearOperator, *, device: torch.device | str = "cpu") -> Any:
    """The deepinv physics computing the same ``A`` as a bayesinv operator (see the module table).

    ``Blur`` (one kernel) -> ``BlurFFT``; ``Inpaint`` (``output="image"``) -> ``Inpainting``; ``MRI``
    -> ``MRI`` (two-channel layout, see :func:`complex_to_channels`); ``MatrixOperator`` (real) ->
    ``CompressedSensing`` whose matrix is the operator's. Raises ``ImportError`` naming the extra when
    deepinv is missing and ``TypeError`` for other operators.
    """
    try:
        import deepinv.physics as dphys
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("to_deepinv needs deepinv: pip install 'bayesinv[deepinv]'") from err
    if isinstance(operator, Blur):
        if operator.kernel.ndim != 2:
            raise ShapeError("to_deepinv: only a Blur with one kernel (kh, kw) maps to BlurFFT")
        kernel = operator.kernel.detach()[None, None]
        return dphys.BlurFFT(img_size=tuple(operator.in_shape), filter=kernel, device=device)
    if isinstance(operator, Inpaint):
        if operator.output != "image":
            raise ValueError("to_deepinv: only Inpaint(output='image') maps to deepinv's Inpainting")
        mask = operator.mask.expand(operator.in_shape).to(torch.float64)
        return dphys.Inpainting(img_size=tuple(operator.in_shape), mask=mask, device=device)
    if isinstance(operator, MRI):
        if operator.in_shape[0] != 1 or not operator.input_complex:
            raise ShapeError(f"to_deepinv: deepinv's single-coil MRI takes one complex channel (input_complex=True), "
                             f"got in_shape {operator.in_shape}, input_complex={operator.input_complex}")
        if isinstance(operator, CentredImageMRI):
            mask = operator.mask[0] if operator.mask.ndim == 3 else operator.mask
            return dphys.MRI(mask=mask.to(torch.float64), device=device)
        def forward(x, **_):
            return complex_to_channels(operator(channels_to_complex(x)))

        def adjoint(y, **_):
            return complex_to_channels(operator.adjoint(channels_to_complex(y)))

        return dphys.LinearPhysics(A=forward, A_adjoint=adjoint)
    if isinstance(operator, MatrixOperator):
        if operator.matrix.is_complex() or len(operator.in_shape) != 3:
            raise ValueError("to_deepinv: only a real MatrixOperator on images (C, H, W) maps to CompressedSensing")
        m = operator.matrix.shape[0]
        physics = dphys.CompressedSensing(m=m, img_size=tuple(operator.in_shape), dtype=operator.matrix.dtype,
                                          device=device)
        matrix = operator.matrix.detach().to(device)
        physics._A = matrix.clone()
        physics._A_adjoint = matrix.conj().T.clone()
        physics._A_dagger = torch.linalg.pinv(matrix)
        return physics
    raise TypeError(f"to_deepinv supports Blur, Inpaint, MRI and MatrixOperator, got {type(operator).__name__}")
