r"""Inpainting: observe a subset of pixels, ``A = diag(mask)`` or its observed rows.

Two measurement layouts, chosen by ``output``:

* ``"image"`` (default): ``A x = mask ⊙ x``, measurements of the image's shape with zeros at missing
  pixels (the layout of DPS and Dirac). ``A`` is an orthogonal projection, so ``A^H = A^+ = A``.
* ``"pixels"``: ``A x = x[mask]``, the ``m`` observed values only (the layout of DDRM's code); the
  likelihood then counts exactly ``m`` measurements. ``A A^H = I``, so ``A^+ = A^H`` (zero-filling).

The SVD is a permutation: singular value 1 on the ``m`` observed pixels (listed first, in
``mask.flatten()`` order), 0 on the others.

>>> import torch
>>> mask = torch.tensor([[True, False], [False, True]])
>>> op = Inpaint((1, 2, 2), mask, output="pixels")
>>> op(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
[[0.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayesinv._validation import check_choice, check_image_shape, check_mask
from bayesinv.errors import ShapeError
from bayesinv.operators._spectral import permuted_layout, spectral_svd
from bayesinv.operators.base import SVD, GramDiagonal, LinearOperator

__all__ = ["Inpaint", "random_mask", "box_mask"]


def _mask_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ShapeError(f"shape must be (H, W) or (C, H, W) of positive sizes, got {shape}")
    return shape


def random_mask(shape: Sequence[int], fraction_missing: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean mask (True = observed) with exactly ``round(fraction_missing * N)`` missing entries, chosen uniformly.

    >>> m = random_mask((4, 4), 0.25, torch.Generator().manual_seed(0))
    >>> m.shape, int((~m).sum())
    (torch.Size([4, 4]), 4)
    """
    shape = _mask_shape(shape)
    if not isinstance(fraction_missing, (int, float)) or not 0.0 <= fraction_missing <= 1.0:
        raise ValueError(f"fraction_missing must be a number in [0, 1], got {fraction_missing!r}")
    n = int(torch.Size(shape).numel())
    missing = torch.randperm(n, generator=generator)[: round(fraction_missing * n)]
    mask = torch.ones(n, dtype=torch.bool)
    mask[missing] = False
    return mask.reshape(shape)


def box_mask(shape: Sequence[int], box: Sequence[int]) -> torch.Tensor:
    """Boolean mask (True = observed) missing the rectangle ``box = (top, left, height, width)`` in every channel.

    >>> box_mask((3, 4), (1, 1, 1, 2)).int().tolist()
    [[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1]]
    """
    shape = _mask_shape(shape)
    box = tuple(int(b) for b in box)
    h, w = shape[-2:]
    if len(box) != 4 or min(box) < 0 or box[0] + box[2] > h or box[1] + box[3] > w:
        raise ValueError(f"box must be (top, left, height, width) inside the {h}x{w} image, got {box}")
    top, left, bh, bw = box
    mask = torch.ones(shape, dtype=torch.bool)
    mask[..., top : top + bh, left : left + bw] = False
    return mask


class Inpaint(LinearOperator):
    """Observe the pixels where ``mask`` is True (see module docstring for the two ``output`` layouts).

    Parameters
    ----------
    in_shape : image shape ``(C, H, W)``.
    mask : boolean ``(H, W)`` (shared by the channels) or ``(C, H, W)``; True = observed.
    output : ``"image"`` (masked image, shape ``in_shape``) or ``"pixels"`` (observed values, shape ``(m,)``).
    input_complex : act on complex images.
    """

    def __init__(self, in_shape: Sequence[int], mask: torch.Tensor, *, output: str = "image",
                 input_complex: bool = False):
        in_shape = check_image_shape("in_shape", in_shape)
        check_choice("output", output, ("image", "pixels"))
        mask = check_mask("mask", mask, in_shape).detach().cpu().contiguous()
        self.register_tensor("mask", mask)
        self.output = output
        self._image_layout = output == "image"
        flat = mask.reshape(-1)
        self.register_tensor("_observed", flat.nonzero().flatten())
        self.register_tensor("_perm", torch.cat([self._observed, (~flat).nonzero().flatten()]))
        out_shape = in_shape if output == "image" else (int(self._observed.numel()),)
        super().__init__(in_shape, out_shape, input_complex=input_complex, output_complex=input_complex)

    @property
    def num_observed(self) -> int:
        return int(self._observed.numel())

    def _weights(self, like: torch.Tensor) -> torch.Tensor:
        """The mask as 0/1 in ``like``'s real precision and device (cached).

        The last conversion is kept under ``like``'s own dtype and device with the mask's version, a lookup of a
        few attribute reads on the sampler's path (the cache is dropped when the mask is replaced, and the
        version check catches a change in place).
        """
        mask, cache = self.mask, self._derived_cache
        last = cache.get("weights_last")
        if last is not None and last[0] is like.dtype and last[2] == mask._version and last[1] == like.device:
            return last[3]
        dtype = like.real.dtype if like.is_complex() else like.dtype
        weights = mask.to(device=like.device, dtype=dtype)
        cache["weights_last"] = (like.dtype, like.device, mask._version, weights)
        return weights

    def _index(self, like: torch.Tensor) -> torch.Tensor:
        observed = self._observed
        if observed.device == like.device:
            return observed
        return self._derived("index", observed.dtype, like.device, lambda: observed.to(like.device), observed)

    def _forward(self, x):
        if self._image_layout:
            return x * self._weights(x)
        return x.reshape(x.shape[0], -1)[:, self._index(x)]

    def _adjoint(self, y):
        if self._image_layout:
            return y * self._weights(y)
        out = torch.zeros(y.shape[0], self.in_dim, dtype=y.dtype, device=y.device)
        out[:, self._index(y)] = y
        return out.reshape(y.shape[0], *self.in_shape)

    def _pinv(self, y):
        return self._adjoint(y)

    def gram_diagonal(self) -> GramDiagonal | None:
        """``A^T A = diag(mask)`` (either output layout)."""
        return None if self.input_complex else GramDiagonal("pixel", self.mask.to(torch.float64))

    def svd(self) -> SVD:
        perm, m = self._perm, self.num_observed

        def identity(v):
            return v

        Ut, U = permuted_layout(perm, self.in_shape) if self.output == "image" else (identity, identity)
        singulars = torch.ones(m, dtype=torch.float64, device=perm.device)
        return spectral_svd(singulars=singulars, perm=perm, in_shape=self.in_shape, transform=identity,
                            inverse=identity, Ut=Ut, U=U)

    def __repr__(self) -> str:
        return f"Inpaint(in_shape={self.in_shape}, observed={self.num_observed}/{self.in_dim}, output={self.output!r})"
