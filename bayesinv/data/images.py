"""Small natural and test images shipped with scikit-image, for out-of-distribution checks.

Only images that ``skimage.data`` ships inside the package are used (no download): the prior was
trained on phantoms, and these show how samplers and calibration behave on images unlike them.
Each image is converted to gray (``skimage.color.rgb2gray``), centre-cropped to a square, resized
with anti-aliasing (``skimage.transform.resize``) and min-max scaled to ``[0, 1]``.

>>> images = load_images(["camera", "moon"], size=32)
>>> tuple(images.shape), float(images.min()), float(images.max())
((2, 1, 32, 32), 0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["SKIMAGE_IMAGES", "load_image", "load_images"]

#: Gray or colour images that ship inside scikit-image (checked offline with scikit-image 0.26).
SKIMAGE_IMAGES: tuple[str, ...] = ("camera", "astronaut", "moon", "coins", "shepp_logan_phantom", "cell",
                                   "microaneurysms", "brick", "grass", "gravel", "clock", "text", "page",
                                   "checkerboard", "chelsea", "coffee")


def _to_unit_square(image: np.ndarray, size: int) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.transform import resize
    from skimage.util import img_as_float

    image = img_as_float(image)
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    h, w = image.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = resize(image[top : top + side, left : left + side], (size, size), anti_aliasing=side > size)
    low, high = image.min(), image.max()
    if high <= low:
        raise ValueError("the image is constant; it cannot be scaled to [0, 1]")
    return (image - low) / (high - low)


def load_image(name: str, size: int = 64, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The scikit-image test image ``name`` as a ``(1, size, size)`` gray tensor in ``[0, 1]``."""
    if name not in SKIMAGE_IMAGES:
        raise ValueError(f"name must be one of {list(SKIMAGE_IMAGES)} (images shipped with scikit-image), got {name!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    import skimage.data

    image = getattr(skimage.data, name)()
    return torch.from_numpy(_to_unit_square(np.asarray(image), size)).to(dtype)[None]


def load_images(names: Sequence[str] | None = None, size: int = 64, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A batch ``(N, 1, size, size)`` of scikit-image test images (default: ``camera``, ``astronaut``, ``moon``,
    ``coins``, ``shepp_logan_phantom``, ``cell``), gray, in ``[0, 1]``."""
    names = list(names) if names is not None else ["camera", "astronaut", "moon", "coins", "shepp_logan_phantom", "cell"]
    if not names:
        raise ValueError("names must list at least one image")
    return torch.stack([load_image(n, size, dtype=dtype) for n in names])
