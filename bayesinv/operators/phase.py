r"""Phase retrieval: intensity-only measurements ``|A x|^2`` (nonlinear operators).

* :class:`PhaseRetrieval`: ``y_i = |a_i^H x|^2`` with a complex Gaussian matrix ``A: (m, n)`` whose
  entries have independent real and imaginary parts ``N(0, 1/(2n))``, so ``E y_i = ||x||^2 / n`` (the
  mean squared pixel) whatever the image size (Candès, Li & Soltanolkotabi 2015, "Wirtinger flow").
* :class:`CodedDiffraction`: coded diffraction patterns ``y_k = |F(d_k ⊙ x)|^2`` for ``K`` random
  unit-modulus masks ``d_k = exp(i theta)``, ``theta ~ U[0, 2 pi)``, shared by the channels, and the
  orthonormal 2-D DFT ``F`` (Candès, Li & Soltanolkotabi 2015, "Phase retrieval from coded diffraction
  patterns"). Since ``F`` is unitary and ``|d_k| = 1``, ``sum_pixels y_k = ||x||^2`` for each ``k``.

Both are :class:`~bayesinv.operators.base.Operator` (no adjoint); samplers differentiate them by
autograd. ``|.|^2`` is invariant to a global phase (and, for real images, a global sign), so the
posterior is multimodal.

>>> import torch
>>> op = CodedDiffraction((1, 4, 4), 2, torch.Generator().manual_seed(0))
>>> y = op(torch.ones(1, 1, 4, 4, dtype=torch.float64))
>>> tuple(y.shape), [round(v, 10) for v in y.sum(dim=(2, 3, 4))[0].tolist()]
((1, 2, 1, 4, 4), [16.0, 16.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bayesinv._validation import check_image_shape, check_positive
from bayesinv.operators._spectral import complex_dtype, fft2, to_complex
from bayesinv.operators.base import Operator

__all__ = ["PhaseRetrieval", "CodedDiffraction"]


def _intensity(z: torch.Tensor) -> torch.Tensor:
    return z.real**2 + z.imag**2


class PhaseRetrieval(Operator):
    """``x -> |A x.flatten()|^2`` with a complex Gaussian ``A: (m, n)`` (see module docstring).

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)`` (``n = C H W``).
    num_measurements : ``m`` (e.g. ``4 n``: oversampling 4).
    generator : draws the matrix.
    input_complex : complex images.

    The matrix is dense, ``m n`` complex64 entries: 32 MiB for a 32x32 image at oversampling 4, but
    512 MiB at 64x64; use :class:`CodedDiffraction` (FFT-based) for larger images.
    """

    def __init__(self, in_shape: Sequence[int], num_measurements: int, generator: torch.Generator | None = None, *,
                 input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        check_positive("num_measurements", num_measurements, integer=True)
        n = math.prod(in_shape)
        parts = torch.randn(2, num_measurements, n, generator=generator, dtype=torch.float64) / math.sqrt(2 * n)
        # stored in complex64 (8 bytes per entry; float64 images use the same entries, exactly promoted)
        self.register_tensor("matrix", torch.complex(parts[0], parts[1]).to(torch.complex64))
        super().__init__(in_shape, (num_measurements,), input_complex=input_complex, output_complex=False)

    def _mat(self, x: torch.Tensor) -> torch.Tensor:
        """The transposed matrix ``(n, m)`` in ``x``'s complex precision and device (cached)."""
        dtype = complex_dtype(x.real.dtype if x.is_complex() else x.dtype)
        return self._derived("matrix_t", dtype, x.device,
                             lambda: self.matrix.to(device=x.device, dtype=dtype).T.contiguous(), self.matrix)

    def _forward(self, x):
        z = to_complex(x.reshape(x.shape[0], -1)) @ self._mat(x)
        return _intensity(z)

    def __repr__(self) -> str:
        return f"PhaseRetrieval(in_shape={self.in_shape}, num_measurements={self.out_shape[0]})"


class CodedDiffraction(Operator):
    """``x -> (|F(d_k ⊙ x)|^2)_{k=1..K}``: measurements ``(K, C, H, W)`` (see module docstring).

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``.
    num_patterns : the number ``K`` of random phase masks.
    generator : draws the masks' phases.
    input_complex : complex images.
    """

    def __init__(self, in_shape: Sequence[int], num_patterns: int, generator: torch.Generator | None = None, *,
                 input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        check_positive("num_patterns", num_patterns, integer=True)
        _, h, w = in_shape
        theta = 2 * math.pi * torch.rand(num_patterns, h, w, generator=generator, dtype=torch.float64)
        self.register_tensor("masks", torch.polar(torch.ones_like(theta), theta))
        super().__init__(in_shape, (num_patterns, *in_shape), input_complex=input_complex, output_complex=False)

    def _forward(self, x):
        dtype = complex_dtype(x.real.dtype if x.is_complex() else x.dtype)
        masks = self._derived("masks", dtype, x.device, lambda: self.masks.to(device=x.device, dtype=dtype), self.masks)
        return _intensity(fft2(x[:, None] * masks[None, :, None]))

    def __repr__(self) -> str:
        return f"CodedDiffraction(in_shape={self.in_shape}, num_patterns={self.out_shape[0]})"
