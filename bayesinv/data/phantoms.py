"""Procedural phantoms: random ellipses (tissue-like), a Shepp–Logan-like family, lesion insertion.

All generators are vectorised over the batch, seeded through a ``torch.Generator`` and return
float32 images in ``[0, 1]`` of shape ``(N, 1, size, size)``. Dataset splits (``train``,
``calibration``, ``test``, ``ood``) draw from disjoint seed streams, so no image appears in two splits.

>>> batch = ellipse_phantoms(4, 32, generator=torch.Generator().manual_seed(0), lesion_prob=1.0)
>>> batch.images.shape, batch.lesion_masks.shape, bool(batch.has_lesion.all())
(torch.Size([4, 1, 32, 32]), torch.Size([4, 1, 32, 32]), True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = ["PhantomBatch", "ellipse_phantoms", "shepp_logan_phantoms", "insert_lesions", "phantom_dataset",
           "SPLIT_SEEDS"]

# Seed streams of the dataset splits: a split's images come from Generator().manual_seed(base + seed).
SPLIT_SEEDS = {"train": 0, "calibration": 1_000_003, "test": 2_000_003, "ood": 3_000_017}


class PhantomBatch(NamedTuple):
    images: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    lesion_masks: torch.Tensor  # (N, 1, H, W) bool: pixels inside an inserted lesion
    has_lesion: torch.Tensor  # (N,) bool
    lesion_centers: torch.Tensor  # (N, 2) float (row, col) in pixels; NaN where no lesion
    audit_centers: torch.Tensor  # (N, 2) where to look for a lesion: its centre, or a random body pixel if none


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres in (-1, 1)
    return torch.meshgrid(coords, coords, indexing="ij")  # rows (y), cols (x)


def _uniform(n: int, low: float, high: float, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, *shape, generator=generator)


def _soft_ellipses(cy, cx, ay, ax, angle, size: int, edge: float) -> torch.Tensor:
    """Soft indicator of ellipses: inputs (N, K) -> (N, K, size, size) in [0, 1], anti-aliased edges.

    The ellipse's quadratic form ``q = a dx^2 + b dx dy + c dy^2`` is expanded so that only the cross
    term is formed at full size (``dx^2`` and ``dy^2`` broadcast from a row and a column).
    """
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    dx = coords[None, None, None, :] - cx[..., None, None]  # (N, K, 1, W)
    dy = coords[None, None, :, None] - cy[..., None, None]  # (N, K, H, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    iax2, iay2 = 1 / ax**2, 1 / ay**2
    qa = (cos**2 * iax2 + sin**2 * iay2)[..., None, None]
    qb = (2 * cos * sin * (iax2 - iay2))[..., None, None]
    qc = (sin**2 * iax2 + cos**2 * iay2)[..., None, None]
    q = torch.addcmul(qa * dx**2 + qc * dy**2, dx * qb, dy)  # (N, K, H, W)
    # distance to the boundary in pixels is about (1 - r) * min axis * size / 2
    scale = (torch.minimum(ax, ay) * size / 2 / edge)[..., None, None]
    return torch.sigmoid(scale - scale * q.sqrt_())


def ellipse_phantoms(num: int, size: int = 32, *, generator: torch.Generator, num_ellipses: int = 5,
                     lesion_prob: float = 0.0, lesion_radius: tuple[float, float] = (1.0, 2.0),
                     lesion_contrast: tuple[float, float] = (0.25, 0.45)) -> PhantomBatch:
    """Random-ellipse phantoms: a body ellipse with ``num_ellipses`` inner structures and a smooth shading.

    Intensities: background 0, body 0.35–0.55, inner ellipses add ``±0.1–0.35``, a smooth linear
    shading of ±0.05 across the body (coil-like inhomogeneity); the result is clipped to ``[0, 1]``.
    A lesion (see :func:`insert_lesions`) is inserted with probability ``lesion_prob``.
    """
    if num < 0 or size < 8:
        raise ValueError(f"need num >= 0 and size >= 8, got num={num}, size={size}")
    g = generator
    n = num
    body = _soft_ellipses(_uniform(n, -0.05, 0.05, g, 1), _uniform(n, -0.05, 0.05, g, 1),
                          _uniform(n, 0.7, 0.9, g, 1), _uniform(n, 0.55, 0.8, g, 1),
                          _uniform(n, -0.3, 0.3, g, 1), size, edge=0.4)[:, 0]
    body_level = _uniform(n, 0.35, 0.55, g)[:, None, None]
    k = num_ellipses
    ang = _uniform(n, 0, math.pi, g, k)
    rad = _uniform(n, 0.0, 0.5, g, k)
    theta = _uniform(n, 0, 2 * math.pi, g, k)
    inner = _soft_ellipses(rad * torch.sin(theta), rad * torch.cos(theta), _uniform(n, 0.08, 0.3, g, k),
                           _uniform(n, 0.08, 0.3, g, k), ang, size, edge=0.35)
    sign = torch.where(torch.rand(n, k, generator=g) < 0.6, 1.0, -1.0)
    level = sign * _uniform(n, 0.1, 0.35, g, k)
    yy, xx = _grid(size)
    grad = _uniform(n, -0.05, 0.05, g, 2)
    shading = grad[:, 0, None, None] * yy + grad[:, 1, None, None] * xx
    img = body * (body_level + shading + torch.einsum("nkhw,nk->nhw", inner, level))
    img = img.clamp(0, 1)[:, None]
    return insert_lesions(img, body[:, None] > 0.5, generator=g, prob=lesion_prob, radius=lesion_radius,
                          contrast=lesion_contrast)


def insert_lesions(images: torch.Tensor, support: torch.Tensor, *, generator: torch.Generator, prob: float = 1.0,
                   radius: tuple[float, float] = (1.0, 2.0),
                   contrast: tuple[float, float] = (0.25, 0.45)) -> PhantomBatch:
    """Insert one small disc-shaped lesion per image with probability ``prob``.

    The lesion is a soft disc of radius ``radius`` pixels centred on a random pixel of ``support``
    (e.g. inside the body), bright or dark with equal probability, with absolute contrast drawn from
    ``contrast``. Returns the new images, the lesion masks (disc of the lesion radius), flags and centres.
    """
    n, _, h, w = images.shape
    if support.shape != images.shape:
        raise ValueError(f"support must have the images' shape {tuple(images.shape)}, got {tuple(support.shape)}")
    g = generator
    has = torch.rand(n, generator=g) < prob
    # random support pixel: argmax of random scores restricted to the support
    scores = torch.rand(n, h * w, generator=g) * support.reshape(n, -1)
    idx = scores.argmax(1)
    center = torch.stack([(idx // w).float(), (idx % w).float()], 1)
    r = _uniform(n, *radius, g)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0)
    amp = sign * _uniform(n, *contrast, g)
    rows = torch.arange(h, dtype=torch.float32)[None, :, None]
    cols = torch.arange(w, dtype=torch.float32)[None, None, :]
    dist = torch.sqrt((rows - center[:, 0, None, None]) ** 2 + (cols - center[:, 1, None, None]) ** 2)
    disc = torch.sigmoid((r[:, None, None] - dist) / 0.3)
    disc = disc * has[:, None, None]
    out = (images + (amp[:, None, None] * disc)[:, None]).clamp(0, 1)
    masks = ((dist <= r[:, None, None]) & has[:, None, None])[:, None]
    centers = torch.where(has[:, None], center, torch.full_like(center, float("nan")))
    return PhantomBatch(out, masks, has, centers, center)


# Modified Shepp–Logan (Toft 1996): intensity, a, b, x0, y0, angle (degrees)
_SHEPP_LOGAN = torch.tensor([
    [1.0, 0.69, 0.92, 0.0, 0.0, 0.0], [-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0],
    [-0.2, 0.11, 0.31, 0.22, 0.0, -18.0], [-0.2, 0.16, 0.41, -0.22, 0.0, 18.0],
    [0.1, 0.21, 0.25, 0.0, 0.35, 0.0], [0.1, 0.046, 0.046, 0.0, 0.1, 0.0],
    [0.1, 0.046, 0.046, 0.0, -0.1, 0.0], [0.1, 0.046, 0.023, -0.08, -0.605, 0.0],
    [0.1, 0.023, 0.023, 0.0, -0.606, 0.0], [0.1, 0.023, 0.046, 0.06, -0.605, 0.0]])


def shepp_logan_phantoms(num: int, size: int = 32, *, generator: torch.Generator, jitter: float = 0.1) -> PhantomBatch:
    """A Shepp–Logan-like family: the modified Shepp–Logan ellipses with each parameter jittered by ``jitter``.

    Out of the training family of :func:`ellipse_phantoms` (hard edges, fixed topology), for OOD audits.
    """
    g = generator
    p = _SHEPP_LOGAN[None].expand(num, -1, -1)
    noise = 1 + jitter * (2 * torch.rand(num, *p.shape[1:], generator=g) - 1)
    p = p * noise
    inten, a, b, x0, y0, ang = p.unbind(-1)
    # flip y so the phantom is upright in (row, col) coordinates
    ell = _soft_ellipses(-y0, x0, b, a, -torch.deg2rad(ang), size, edge=0.3)
    img = (ell * inten[..., None, None]).sum(1).clamp(0, 1)[:, None]
    zeros = torch.zeros_like(img, dtype=torch.bool)
    centers = torch.full((num, 2), float("nan"))
    return PhantomBatch(img, zeros, torch.zeros(num, dtype=torch.bool), centers, torch.full((num, 2), size / 2))


def phantom_dataset(split: str, num: int, size: int = 32, *, seed: int = 0, lesion_prob: float = 0.5,
                    family: str = "ellipses") -> PhantomBatch:
    """A deterministic dataset split: ``train``, ``calibration``, ``test`` or ``ood``.

    Splits use disjoint seed streams (``SPLIT_SEEDS[split] + seed``), so they never share images.
    ``family`` is ``"ellipses"`` (the training family) or ``"shepp_logan"``.
    """
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLIT_SEEDS)}")
    g = torch.Generator().manual_seed(SPLIT_SEEDS[split] + int(seed))
    if family == "ellipses":
        return ellipse_phantoms(num, size, generator=g, lesion_prob=lesion_prob)
    if family == "shepp_logan":
        return shepp_logan_phantoms(num, size, generator=g)
    raise ValueError(f"unknown phantom family {family!r}; choose 'ellipses' or 'shepp_logan'")
