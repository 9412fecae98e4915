r"""Find a small disc-shaped lesion anywhere in an image, and measure its contrast and radius.

:func:`~bayesinv.diagnostics.hallucination.lesion_contrast` asks "is there a lesion *at c*?"; an unconditional
prior sample has no known centre, so :func:`contrast_map` evaluates the same centre-surround statistic at every
pixel,

    ``m(p) = mean{x_q : |q - p| <= radius} - median{x_q : ring[0] <= |q - p| <= ring[1]}``,

(zero padding outside the image, where the phantoms' background is 0), and :func:`scan_lesions` takes, per
image, the strongest spot among the *body* pixels whose annulus median exceeds ``body_level`` (so the edge of
the body, where the annulus is half background, is not scanned). Its score asks that the disc stand out from
nearly *all* of its annulus, ``max(mean_disc - q_hi, q_lo - mean_disc)`` with ``q_hi``/``q_lo`` the
``surround_quantile``/``1 - surround_quantile`` quantiles of the annulus: a line or the edge of a larger
ellipse through the disc keeps part of the annulus at the disc's level and scores low, a blob does not. The
decision ``score > threshold`` is calibrated on true images by ``benchmarks/prior_lesions.py``.

At the detected pixel, :func:`fit_disc` fits the lesion model of
:func:`bayesinv.data.phantoms.insert_lesions`, ``b + a * sigmoid((r - |q - p|) / 0.3)`` over a ``7 x 7``
window, by least squares in ``(b, a)`` for each ``r`` of a grid (the best ``r`` wins): the estimated
contrast ``a`` and radius ``r`` of what the detector found, to compare size and contrast histograms of
prior samples with those of the data.

>>> import torch
>>> img = torch.full((1, 1, 15, 15), 0.4, dtype=torch.float64)
>>> img[0, 0, 7, 7] = img[0, 0, 6, 7] = img[0, 0, 8, 7] = img[0, 0, 7, 6] = img[0, 0, 7, 8] = 0.7
>>> found = scan_lesions(img)
>>> round(float(found.contrast[0]), 12), found.center[0].tolist()
(0.3, [7, 7])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

__all__ = ["contrast_map", "LesionScan", "scan_lesions", "DiscFit", "fit_disc", "DISC_EDGE"]

DISC_EDGE = 0.3  # edge width (pixels) of the soft disc of bayesinv.data.phantoms.insert_lesions


def _offsets(half: int) -> torch.Tensor:
    r = torch.arange(-half, half + 1, dtype=torch.float64)
    return torch.sqrt(r[:, None] ** 2 + r[None, :] ** 2).reshape(-1)  # (k*k,) distance of each window offset


def contrast_map(images: torch.Tensor, radius: float = 1.0, ring: tuple[float, float] = (2.0, 3.0),
                 surround_quantile: float = 0.9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disc mean minus annulus median at every pixel of ``images: (N, 1, H, W)``.

    Returns ``(contrast, background, score)``, all ``(N, H, W)`` float64: the statistic ``m`` of the module
    docstring, the annulus median itself (the local background level) and the blob score
    ``max(mean_disc - q_hi, q_lo - mean_disc)``.
    """
    if not 0.5 <= surround_quantile <= 1:
        raise ValueError(f"surround_quantile must be in [0.5, 1], got {surround_quantile}")
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got shape {tuple(images.shape)}")
    if not 0 <= radius < ring[0] < ring[1]:
        raise ValueError(f"need 0 <= radius < ring[0] < ring[1], got radius={radius}, ring={tuple(ring)}")
    n, _, h, w = images.shape
    half = int(ring[1])
    dist = _offsets(half)
    windows = F.unfold(images.double().cpu(), 2 * half + 1, padding=half)  # (N, k*k, H*W)
    inner = windows[:, dist <= radius].mean(1)
    annulus = windows[:, (dist >= ring[0]) & (dist <= ring[1])]
    levels = annulus.quantile(torch.tensor([1 - surround_quantile, 0.5, surround_quantile], dtype=torch.float64),
                              dim=1)
    score = torch.maximum(inner - levels[2], levels[0] - inner)
    return tuple(v.reshape(n, h, w) for v in (inner - levels[1], levels[1], score))


class LesionScan(NamedTuple):
    score: torch.Tensor  # (N,) max blob score over the scanned pixels (0 where none is scanned)
    contrast: torch.Tensor  # (N,) signed contrast at that pixel
    center: torch.Tensor  # (N, 2) long (row, col) of that pixel


def scan_lesions(images: torch.Tensor, *, body_level: float = 0.1, radius: float = 1.0,
                 ring: tuple[float, float] = (2.0, 3.0), surround_quantile: float = 0.9) -> LesionScan:
    """The strongest lesion-like spot of each image (module docstring); ``images: (N, 1, H, W)``."""
    contrast, background, blob = contrast_map(images, radius, ring, surround_quantile)
    n, h, w = contrast.shape
    scanned = torch.where(background > body_level, blob, torch.zeros_like(blob)).reshape(n, -1)
    score, index = scanned.max(1)
    signed = contrast.reshape(n, -1).gather(1, index[:, None])[:, 0]
    return LesionScan(score, signed, torch.stack([index // w, index % w], 1))


class DiscFit(NamedTuple):
    contrast: torch.Tensor  # (N,) fitted amplitude a
    radius: torch.Tensor  # (N,) fitted radius r (a value of the grid)
    background: torch.Tensor  # (N,) fitted level b
    rms: torch.Tensor  # (N,) root-mean-square residual of the fit over the window


def fit_disc(images: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor | None = None,
             half: int = 3) -> DiscFit:
    """Least-squares fit of ``b + a * sigmoid((r - |q - c|) / 0.3)`` around ``centers: (N, 2)`` (module docstring).

    ``radii`` is the grid of ``r`` tried (default 0.5 to 3 px in steps of 0.05); the window is
    ``(2 half + 1)^2`` pixels, zero-padded at the image border.
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    if centers.shape != (n, 2):
        raise ValueError(f"centers must have shape ({n}, 2), got {tuple(centers.shape)}")
    radii = torch.arange(0.5, 3.0001, 0.05, dtype=torch.float64) if radii is None else radii.double()
    padded = F.pad(images.double().cpu()[:, 0], (half, half, half, half))
    rows = centers[:, 0].long()[:, None] + torch.arange(2 * half + 1)[None]  # padded coordinates
    cols = centers[:, 1].long()[:, None] + torch.arange(2 * half + 1)[None]
    patch = padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]].reshape(n, -1)  # (N, k*k)
    dist = _offsets(half)
    basis = torch.sigmoid((radii[:, None] - dist[None]) / DISC_EDGE)  # (R, k*k)
    design = torch.stack([torch.ones_like(basis), basis], -1)  # (R, k*k, 2)
    coef = torch.linalg.lstsq(design[None].expand(n, -1, -1, -1),
                              patch[:, None, :, None].expand(-1, len(radii), -1, -1)).solution[..., 0]  # (N, R, 2)
    resid = patch[:, None] - (design[None] @ coef[..., None])[..., 0]  # (N, R, k*k)
    sse = (resid**2).sum(-1)
    best = sse.argmin(1)
    pick = coef[torch.arange(n), best]
    return DiscFit(pick[:, 1], radii[best], pick[:, 0], (sse[torch.arange(n), best] / dist.numel()).sqrt())
