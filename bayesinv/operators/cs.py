r"""Compressed sensing: random Gaussian and Bernoulli matrices, and subsampled orthonormal Fourier.

* :func:`gaussian_sensing`: ``A`` with i.i.d. entries ``N(0, 1/m)``, so ``E[A^T A] = I`` and
  ``E||A x||^2 = ||x||^2`` (Candès & Tao 2006).
* :func:`bernoulli_sensing`: i.i.d. entries ``±1/sqrt(m)`` with equal probability (same moments).
* :class:`SubsampledFourier`: ``m`` frequencies of the orthonormal 2-D DFT chosen at random per image
  (the same ones in every channel), returned as a complex vector ``(C * m,)``. The rows of the
  unitary DFT are orthonormal, so ``A A^H = I``, ``s = 1`` and the SVD is a permutation of the
  Fourier basis (see :class:`~bayesinv.operators.mri.MaskedFourier`, whose ``"samples"`` layout it is).

The dense operators are :class:`~bayesinv.operators.matrix.MatrixOperator` (SVD computed once, float64).

>>> import torch
>>> op = gaussian_sensing((1, 4, 4), 5, torch.Generator().manual_seed(0))
>>> op.matrix.shape, op(torch.ones(2, 1, 4, 4, dtype=torch.float64)).shape
(torch.Size([5, 16]), torch.Size([2, 5]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bayesinv._validation import check_image_shape, check_positive
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.operators.mri import MaskedFourier

__all__ = ["gaussian_sensing", "bernoulli_sensing", "SubsampledFourier", "random_frequency_mask"]


def _num_measurements(name: str, value: int, limit: int) -> int:
    check_positive(name, value, integer=True)
    if value > limit:
        raise ValueError(f"{name} must be at most {limit} (the number of unknowns), got {value}")
    return value


def gaussian_sensing(in_shape: Sequence[int], num_measurements: int,
                     generator: torch.Generator | None = None) -> MatrixOperator:
    """``A: (m, n)`` with i.i.d. ``N(0, 1/m)`` entries, ``n = prod(in_shape)`` (float64)."""
    in_shape = check_image_shape("in_shape", in_shape)
    n = math.prod(in_shape)
    m = _num_measurements("num_measurements", num_measurements, n)
    matrix = torch.randn(m, n, generator=generator, dtype=torch.float64) / math.sqrt(m)
    return MatrixOperator(matrix, in_shape)


def bernoulli_sensing(in_shape: Sequence[int], num_measurements: int,
                      generator: torch.Generator | None = None) -> MatrixOperator:
    """``A: (m, n)`` with i.i.d. entries ``±1/sqrt(m)``, each sign with probability 1/2 (float64)."""
    in_shape = check_image_shape("in_shape", in_shape)
    n = math.prod(in_shape)
    m = _num_measurements("num_measurements", num_measurements, n)
    signs = torch.randint(0, 2, (m, n), generator=generator).to(torch.float64) * 2 - 1
    return MatrixOperator(signs / math.sqrt(m), in_shape)


def random_frequency_mask(size: int | Sequence[int], num_frequencies: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean ``(H, W)`` mask with exactly ``num_frequencies`` True entries chosen uniformly (centred k-space).

    >>> int(random_frequency_mask(4, 5, torch.Generator().manual_seed(0)).sum())
    5
    """
    h, w = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    m = _num_measurements("num_frequencies", num_frequencies, h * w)
    mask = torch.zeros(h * w, dtype=torch.bool)
    mask[torch.randperm(h * w, generator=generator)[:m]] = True
    return mask.reshape(h, w)


class SubsampledFourier(MaskedFourier):
    """The orthonormal 2-D DFT at the frequencies of ``mask`` (centred layout), as a complex vector ``(m,)``.

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``.
    mask : boolean ``(H, W)`` (shared by channels) or ``(C, H, W)``; see :func:`random_frequency_mask`.
    input_complex : complex images (real by default; the real-space ``pinv`` is exact, see
        :mod:`bayesinv.operators.mri`).
    """

    def __init__(self, in_shape: Sequence[int], mask: torch.Tensor, *, input_complex: bool = False):
        super().__init__(in_shape, mask, output="samples", input_complex=input_complex)

    @classmethod
    def random(cls, in_shape: Sequence[int], num_frequencies: int, generator: torch.Generator | None = None, *,
               input_complex: bool = False) -> SubsampledFourier:
        """``num_frequencies`` frequencies per channel chosen uniformly at random."""
        in_shape = check_image_shape("in_shape", in_shape)
        mask = random_frequency_mask(in_shape[1:], num_frequencies, generator)
        return cls(in_shape, mask, input_complex=input_complex)
