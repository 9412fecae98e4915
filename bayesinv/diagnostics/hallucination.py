"""Hallucination audits: did the prior invent structure the measurement never supported?

* :func:`nullspace_decomposition` (Bhadra et al. 2021, "On hallucinations in tomographic image
  reconstruction"): a reconstruction ``x_hat`` splits into its null-space component
  ``(I - A^+ A) x_hat`` (invisible to the measurement: only the prior put it there) and its
  measurement-space error ``A^+ A x_hat - A^+ y``; computed with the operator's own ``pinv``.
* :func:`data_consistency`: per-sample test of ``y`` against ``noise(A(x_hat))``. For Gaussian noise
  ``||y - A x_hat||^2 / sigma^2 ~ chi^2_m`` when ``x_hat`` is an exact posterior draw (because
  ``(x_hat, y)`` then has the joint law of ``(x, y)``); other noise models use a simulated reference.
* :func:`z_map`: ``(mean - truth) / std`` per pixel; the fraction of ``|z| > 3`` against the
  ``P(|Z| > 3) = 0.0027`` a calibrated Gaussian posterior gives.
* :func:`lesion_probability` and :func:`lesion_audit`: a centre-surround detector (disc mean minus
  annulus median, :func:`lesion_contrast`) on each sample,
  averaged into ``P(lesion at c | y)``, then ROC AUC, false- and missed-lesion rates with
  Clopper–Pearson intervals, Brier score and reliability (ECE) of that probability.

All functions are pure: tensors in, named tuples of tensors/floats out.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.stats
import torch

from bayesinv.noise import Gaussian, NoiseModel
from bayesinv.operators.base import LinearOperator, Operator

__all__ = ["NullSpaceMaps", "nullspace_decomposition", "DataConsistency", "data_consistency", "ZMap", "z_map",
           "LESION_RADIUS", "LESION_RING", "lesion_contrast", "lesion_probability", "LesionAudit", "lesion_audit",
           "clopper_pearson"]


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) binomial interval, via ``scipy.stats.binomtest``."""
    if trials == 0:
        return (0.0, 1.0)
    ci = scipy.stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


class NullSpaceMaps(NamedTuple):
    null: torch.Tensor  # (S, *in_shape): (I - A^+ A) x_hat
    measurement: torch.Tensor | None  # (S, *in_shape): A^+ A x_hat - A^+ y  (None without y)
    null_mean: torch.Tensor  # mean over samples of |null|
    null_std: torch.Tensor  # spread over samples of the null component


def nullspace_decomposition(operator: LinearOperator, x_hat: torch.Tensor,
                            y: torch.Tensor | None = None) -> NullSpaceMaps:
    """Split reconstructions ``x_hat: (S, *in_shape)`` into null-space and measurement-space parts.

    For inpainting the null space is the set of unobserved pixels, so ``null`` equals ``x_hat`` there
    and zero elsewhere; for an invertible operator it is zero.

    >>> import torch
    >>> from bayesinv.operators import Identity
    >>> maps = nullspace_decomposition(Identity((3,)), torch.ones(2, 3, dtype=torch.float64))
    >>> float(maps.null.abs().max())
    0.0
    """
    if not isinstance(operator, LinearOperator):
        raise TypeError(f"the null space is defined for linear operators; got {type(operator).__name__}")
    projected = operator.pinv(operator(x_hat))  # A^+ A x_hat, the row-space component
    if projected.is_complex() and not x_hat.is_complex():
        projected = projected.real
    null = x_hat - projected
    measurement = None
    if y is not None:
        y = y if y.shape[0] == x_hat.shape[0] else y.expand(x_hat.shape[0], *y.shape[1:])
        ref = operator.pinv(y)
        if ref.is_complex() and not x_hat.is_complex():
            ref = ref.real
        measurement = projected - ref
    mag = null.abs()
    return NullSpaceMaps(null, measurement, mag.mean(0), null.std(0, correction=1) if null.shape[0] > 1 else
                         torch.zeros_like(mag[0]))


class DataConsistency(NamedTuple):
    statistic: torch.Tensor  # (S,) ||y - A x_hat||^2 / sigma^2 (Gaussian) or -2 log p(y | x_hat)
    dof: int  # degrees of freedom of the chi^2 reference (real measurements counted; 0 if simulated)
    pvalues: torch.Tensor  # (S,) upper-tail p-values
    rejected: torch.Tensor  # (S,) bool, p < level
    level: float


def data_consistency(operator: Operator, noise: NoiseModel, y: torch.Tensor, x_hat: torch.Tensor, *,
                     level: float = 0.01, num_simulations: int = 200,
                     generator: torch.Generator | None = None) -> DataConsistency:
    """Test each sample ``x_hat[s]`` against the measurement ``y`` (``(1, *out_shape)``).

    Gaussian noise with known sigma: statistic ``||y - A x_hat||^2 / sigma^2`` against ``chi^2`` with
    ``m`` degrees of freedom (``2m`` for complex measurements). Otherwise: statistic
    ``-2 log p(y | x_hat)`` against ``num_simulations`` replicates ``y_rep ~ noise(A x_hat)``.
    """
    mean = operator(x_hat)
    y = y if y.ndim == mean.ndim else y.unsqueeze(0)
    if isinstance(noise, Gaussian) and noise.sigma is not None:
        resid = (y - mean).reshape(mean.shape[0], -1)
        stat = (resid.abs() ** 2).sum(1) / noise.sigma**2
        dof = resid.shape[1] * (2 if resid.is_complex() else 1)
        p = torch.from_numpy(scipy.stats.chi2.sf(stat.detach().cpu().double().numpy(), dof))
    else:
        stat = -2 * noise.log_prob(y, mean)
        reps = torch.stack([-2 * noise.log_prob(noise.sample(mean, generator=generator), mean)
                            for _ in range(num_simulations)])  # (R, S)
        p = ((reps >= stat).sum(0).double() + 1) / (num_simulations + 1)
        dof = 0
    return DataConsistency(stat.detach(), dof, p, p < level, level)


class ZMap(NamedTuple):
    z: torch.Tensor  # (*event) (mean - truth) / std
    fraction_above: float  # fraction of pixels with |z| > threshold
    expected_fraction: float  # P(|Z| > threshold) for a calibrated Gaussian posterior
    threshold: float


def z_map(mean: torch.Tensor, std: torch.Tensor, truth: torch.Tensor, *, threshold: float = 3.0,
          min_std: float = 1e-6) -> ZMap:
    """Posterior z-map ``(mean - truth) / std`` and its hallucination index ``P(|z| > threshold)``."""
    z = (mean - truth) / std.clamp_min(min_std)
    frac = float((z.abs() > threshold).double().mean())
    return ZMap(z, frac, float(2 * scipy.stats.norm.sf(threshold)), threshold)


LESION_RADIUS = 1.0  # inner disc of the detector: the centre pixel and its 4 neighbours
LESION_RING = (2.0, 3.0)  # annulus of the local background (20 pixels)


def lesion_contrast(images: torch.Tensor, centers: torch.Tensor, radius: float = LESION_RADIUS,
                    ring: tuple[float, float] = LESION_RING) -> torch.Tensor:
    """Centre-surround contrast at ``centers``: mean over a disc minus the median over an annulus.

    ``c = mean{x_p : |p - c| <= radius} - median{x_p : ring[0] <= |p - c| <= ring[1]}``, a matched
    filter for a small disc whose local background is estimated robustly: the median ignores the part
    of the annulus that crosses an edge (another structure, the body border), which a ring *mean* would
    average in. A disc of contrast ``a`` on a flat or linear (ramp) background gives exactly ``a``
    (a ramp's median over a point-symmetric annulus is its value at the centre); a flat image gives 0.
    The defaults (disc of radius 1 px, annulus 2–3 px) suit the 1–2 px lesions of
    :func:`bayesinv.data.phantoms.insert_lesions`; ``benchmarks/lesion_detector.py`` measures them.

    Parameters
    ----------
    images : ``(N, S, C, H, W)`` (S samples per case) or ``(N, C, H, W)``; channels are averaged
        (real part of complex images).
    centers : ``(N, 2)`` (row, col) in pixels.
    radius : radius of the inner disc (pixel centres within it are averaged), ``>= 0``.
    ring : ``(inner, outer)`` radii of the annulus, ``radius < inner < outer``.

    Returns
    -------
    ``(N, S)`` (or ``(N,)``) contrasts; NaN where the annulus falls entirely outside the image.

    >>> import torch
    >>> img = torch.full((1, 1, 9, 9), 0.3, dtype=torch.float64)
    >>> img[0, 0, 4, 4] = img[0, 0, 3, 4] = img[0, 0, 5, 4] = img[0, 0, 4, 3] = img[0, 0, 4, 5] = 0.7
    >>> round(float(lesion_contrast(img, torch.tensor([[4.0, 4.0]]))[0]), 12)
    0.4
    """
    if not 0 <= radius < ring[0] < ring[1]:
        raise ValueError(f"need 0 <= radius < ring[0] < ring[1], got radius={radius}, ring={tuple(ring)}")
    if images.ndim not in (4, 5):
        raise ValueError(f"images must be (N, S, C, H, W) or (N, C, H, W), got shape {tuple(images.shape)}")
    squeeze = images.ndim == 4
    if squeeze:
        images = images[:, None]
    n, _, _, h, w = images.shape
    if centers.shape != (n, 2):
        raise ValueError(f"centers must have shape ({n}, 2) to match images, got {tuple(centers.shape)}")
    rows = torch.arange(h, dtype=torch.float64)[None, :, None]
    cols = torch.arange(w, dtype=torch.float64)[None, None, :]
    c = centers.double().cpu()
    dist = torch.sqrt((rows - c[:, 0, None, None]) ** 2 + (cols - c[:, 1, None, None]) ** 2)  # (N, H, W)
    inner = (dist <= radius).double()
    annulus = ((dist >= ring[0]) & (dist <= ring[1])).reshape(n, 1, h * w)
    img = images.real.double().cpu().mean(2)  # average channels: (N, S, H, W)
    mean_in = (img * inner[:, None]).sum((-1, -2)) / inner.sum((-1, -2))[:, None].clamp_min(1)
    ring_px = torch.where(annulus, img.reshape(n, -1, h * w), torch.nan)
    out = mean_in - torch.nanquantile(ring_px, 0.5, dim=-1)
    return out[:, 0] if squeeze else out


def lesion_probability(samples: torch.Tensor, centers: torch.Tensor, *, threshold: float = 0.13,
                       radius: float = LESION_RADIUS, ring: tuple[float, float] = LESION_RING) -> torch.Tensor:
    """``P(lesion at c | y)``: the fraction of samples whose ``|lesion_contrast| > threshold``, ``(N,)``.

    ``samples``: ``(N, S, C, H, W)``. The default threshold 0.13 is the 95% quantile (rounded up) of
    ``|lesion_contrast|`` at lesion-free audit centres of 2000 training phantoms, i.e. a 5% false-lesion
    rate on true images (``benchmarks/lesion_detector.py``).
    """
    return (lesion_contrast(samples, centers, radius, ring).abs() > threshold).double().mean(1)


class LesionAudit(NamedTuple):
    auc: float
    false_lesion_rate: float  # fraction of lesion-free cases with P(lesion|y) > decision threshold
    false_lesion_cp: tuple[float, float]
    missed_lesion_rate: float
    missed_lesion_cp: tuple[float, float]
    brier: float
    ece: float
    reliability: dict  # bin centres, observed frequency, counts


def lesion_audit(prob: torch.Tensor, has_lesion: torch.Tensor, *, decision: float = 0.5, bins: int = 5) -> LesionAudit:
    """Score ``P(lesion | y)`` (``(N,)``) against the truth ``has_lesion`` (``(N,)`` bool).

    AUC is the Mann–Whitney statistic ``U / (n1 n0)`` (scipy); rates use Clopper–Pearson intervals;
    ECE is the count-weighted mean ``|observed - predicted|`` over ``bins`` equal-width bins.
    """
    p = prob.double().cpu().numpy()
    t = has_lesion.bool().cpu().numpy()
    pos, neg = p[t], p[~t]
    if len(pos) and len(neg):
        u = scipy.stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
        auc = float(u / (len(pos) * len(neg)))
    else:
        auc = float("nan")
    false = int((neg > decision).sum())
    missed = int((pos <= decision).sum())
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    centres, observed, counts, ece = [], [], [], 0.0
    for b in range(bins):
        sel = idx == b
        counts.append(int(sel.sum()))
        centres.append(float((edges[b] + edges[b + 1]) / 2))
        observed.append(float(t[sel].mean()) if sel.any() else float("nan"))
        if sel.any():
            ece += sel.sum() / len(p) * abs(t[sel].mean() - p[sel].mean())
    return LesionAudit(auc, false / max(len(neg), 1), clopper_pearson(false, len(neg)), missed / max(len(pos), 1),
                       clopper_pearson(missed, len(pos)), float(np.mean((p - t) ** 2)), float(ece),
                       {"bin_centres": centres, "observed": observed, "counts": counts})
