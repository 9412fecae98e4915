"""Coverage of credible intervals: per pixel, pooled, as maps, by region, with Clopper–Pearson bands.

For test cases ``n = 1..N`` with truth ``x_n`` and posterior samples ``x_n^(1..S)`` the level-``p``
interval ``[lo_n, hi_n]`` (equal-tailed: the ``(1-p)/2`` and ``(1+p)/2`` sample quantiles; HPD: the
narrowest window holding ``ceil(p S)`` sorted samples, per pixel) *covers* pixel ``j`` when
``lo_nj <= x_nj <= hi_nj``. A calibrated posterior covers with probability ``p`` (marginally over the
data), so the empirical coverage should track the nominal level. The expected calibration error is
``ECE = mean_levels |coverage(p) - p|``.

What each uncertainty figure assumes (pixels of one image are *not* independent in general):

* ``cp_low``/``cp_high`` (over pixels): Clopper–Pearson on the ``N * P`` pooled pixel hits. Exact
  only if all hits are independent (true for the diagonal conjugate model used in the tests; too
  narrow for images whose pixel errors are correlated). Use it as a lower bound on the uncertainty.
* ``case_low``/``case_high`` (over cases): a Student-t interval on the ``N`` per-case mean
  coverages; valid (asymptotically) whenever test cases are independent, whatever the pixel
  correlation.
* ``random_pixel_low``/``random_pixel_high``: Clopper–Pearson on one hit per case at a pixel drawn
  uniformly (with the given generator); exact under independent cases, but noisier.

The HPD computation follows the standard sorted-sample shortest-interval rule (arviz ``hdi`` keeps
``floor(p S) + 1`` samples; here ``ceil(p S)``, identical unless ``p S`` is an integer).
Finite-S biases, measured on an exact Gaussian posterior with S = 200: the equal-tailed interval from
linearly interpolated sample quantiles covers ``p (S - 1)/(S + 1)`` on average (order statistics:
``E F(X_(k)) = k/(S + 1)``); the sample HPD interval, being the narrowest of many windows, covers
0.02-0.04 less than nominal (most at small levels). Use S >= 100 for coverage curves.
References: Clopper & Pearson (1934), Biometrika 26(4); Hyndman (1996), "Computing and graphing
highest density regions".

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> truths = torch.randn(200, 4, generator=g)
>>> samples = torch.randn(200, 50, 4, generator=g)      # prior = posterior here: calibrated
>>> res = coverage(samples, truths, levels=(0.5, 0.9))
>>> bool(abs(res.empirical[1] - 0.9) < 0.05)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.stats
import torch

from bayesinv.errors import NonFiniteError, ShapeError

__all__ = ["DEFAULT_LEVELS", "QUANTILE_METHODS", "as_samples", "as_array", "clopper_pearson_interval",
           "equal_tailed_intervals",
           "hpd_intervals", "credible_intervals", "StratumCoverage", "CoverageResult", "coverage"]

DEFAULT_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def as_array(name: str, value: Any) -> np.ndarray:
    """A float numpy array of a tensor/array (float32 kept, anything else float64), checked finite."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == bool:
        raise ShapeError(f"{name} must be numeric, got a boolean array")
    arr = arr.astype(np.float32 if arr.dtype == np.float32 else np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains {int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def as_samples(samples: Any, truths: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Bring samples to a float array ``(N, S, *event)`` and truths to ``(N, *event)``.

    ``samples`` is an array/tensor ``(N, S, *event)`` or a sequence of N
    :class:`~bayesinv.posterior.Posterior` objects (chains and draws are flattened into S; all must
    have the same number of samples).
    """
    if isinstance(samples, Sequence) and len(samples) > 0 and hasattr(samples[0], "flat"):
        flats = [p.flat() for p in samples]
        counts = {int(f.shape[0]) for f in flats}
        if len(counts) != 1:
            raise ShapeError(f"samples: all posteriors must hold the same number of samples, got {sorted(counts)}")
        samples = torch.stack([f.real if f.is_complex() else f for f in flats])
    arr = as_array("samples", samples)
    if arr.ndim < 3:
        raise ShapeError(f"samples must have shape (N cases, S samples, *event) with event ndim >= 1, "
                         f"got {arr.shape}")
    if truths is None:
        return arr, None
    tru = as_array("truths", truths)
    if tru.shape != (arr.shape[0],) + arr.shape[2:]:
        raise ShapeError(f"truths must have shape (N, *event) = {(arr.shape[0],) + arr.shape[2:]}, got {tru.shape}")
    return arr, tru


def _check_levels(levels: Sequence[float]) -> np.ndarray:
    lv = np.asarray(levels, dtype=np.float64).reshape(-1)
    if lv.size == 0 or not ((lv > 0) & (lv < 1)).all():
        raise ValueError(f"levels must be numbers in (0, 1), got {list(levels)}")
    return lv


def clopper_pearson_interval(successes: Any, trials: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial (Clopper–Pearson) interval, vectorised.

    ``[B(a/2; k, n-k+1), B(1-a/2; k+1, n-k)]`` with ``B`` the beta quantile and ``a = 1 - confidence``
    (lower bound 0 when ``k = 0``, upper 1 when ``k = n``).

    >>> lo, hi = clopper_pearson_interval(5, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.1871, 0.8129)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if (k < 0).any() or (k > n).any():
        raise ValueError("successes must lie in [0, trials]")
    a = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, scipy.stats.beta.ppf(a / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, scipy.stats.beta.ppf(1 - a / 2, k + 1, n - k), 1.0)
    return lo, hi


QUANTILE_METHODS = ("linear", "weibull")


def _sorted_quantile(ordered: np.ndarray, q: float, method: str = "linear") -> np.ndarray:
    """``np.quantile(..., q, axis=1, method=method)`` from samples already sorted along axis 1.

    ``linear`` (numpy's default) puts ``q`` at 0-based position ``q (S - 1)``; ``weibull`` at
    ``q (S + 1) - 1`` (clamped to the sample range), the plotting position with ``E F(X_(k)) = k/(S + 1)``.
    """
    num = ordered.shape[1]
    if method == "linear":
        pos = q * (num - 1)
    elif method == "weibull":
        pos = min(max(q * (num + 1) - 1, 0.0), num - 1)
    else:
        raise ValueError(f"method must be one of {QUANTILE_METHODS}, got {method!r}")
    i = min(int(math.floor(pos)), ordered.shape[1] - 1)
    j = min(i + 1, ordered.shape[1] - 1)
    frac = pos - i
    return ordered[:, i] + frac * (ordered[:, j] - ordered[:, i])


def equal_tailed_intervals(samples: np.ndarray, level: float, *, presorted: bool = False,
                           method: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval per case and pixel: sample quantiles ``(1-p)/2`` and ``(1+p)/2`` over axis 1.

    Linear interpolation between order statistics; ``method='linear'`` is numpy's default quantile
    (expected coverage ``p (S - 1)/(S + 1)`` for exact samples), ``method='weibull'`` numpy's
    ``weibull`` (expected coverage ``p`` up to interpolation, when ``p (S + 1)`` stays inside ``[1, S]``).
    ``presorted=True`` skips the sort when ``samples`` is already sorted along axis 1.
    """
    ordered = samples if presorted else np.sort(samples, axis=1)
    return (_sorted_quantile(ordered, (1 - level) / 2, method),
            _sorted_quantile(ordered, (1 + level) / 2, method))


def hpd_intervals(samples: np.ndarray, level: float, *, presorted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Shortest interval holding ``m = ceil(p S)`` of the S sorted samples, per case and pixel (axis 1).

    Vectorised: the widths ``x_(i+m-1) - x_(i)`` of every window ``i = 0..S-m`` are compared at once.

    >>> s = np.array([[[0.], [1.], [1.1], [1.2], [5.]]]).reshape(1, 5, 1)
    >>> lo, hi = hpd_intervals(s, 0.6)
    >>> float(lo[0, 0]), float(hi[0, 0])
    (1.0, 1.2)
    """
    num = samples.shape[1]
    m = min(num, max(1, math.ceil(level * num - 1e-9)))
    ordered = samples if presorted else np.sort(samples, axis=1)
    widths = ordered[:, m - 1:] - ordered[:, : num - m + 1]
    start = np.argmin(widths, axis=1)[:, None]
    lo = np.take_along_axis(ordered, start, axis=1)[:, 0]
    hi = np.take_along_axis(ordered, start + m - 1, axis=1)[:, 0]
    return lo, hi


def credible_intervals(samples: np.ndarray, level: float, kind: str = "eti", *, presorted: bool = False,
                       method: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """``equal_tailed_intervals`` (``kind='eti'``, quantile ``method``) or ``hpd_intervals`` (``kind='hpd'``)."""
    if kind == "eti":
        return equal_tailed_intervals(samples, level, presorted=presorted, method=method)
    if kind == "hpd":
        return hpd_intervals(samples, level, presorted=presorted)
    raise ValueError(f"kind must be 'eti' or 'hpd', got {kind!r}")


class StratumCoverage(NamedTuple):
    """Coverage over the pixels of one region (mask), per level, with CP intervals over its pixels."""

    empirical: np.ndarray  # (L,)
    cp_low: np.ndarray
    cp_high: np.ndarray
    num_pixels: int
    case_mean: np.ndarray  # (L,) mean over cases with >= 1 pixel in the region of their in-region coverage
    case_low: np.ndarray
    case_high: np.ndarray


class CoverageResult(NamedTuple):
    """Output of :func:`coverage`; arrays are indexed by level first."""

    levels: np.ndarray  # (L,) nominal levels
    kind: str
    empirical: np.ndarray  # (L,) pooled over cases and pixels
    cp_low: np.ndarray  # CP over pooled pixel hits (assumes independent pixels)
    cp_high: np.ndarray
    case_mean: np.ndarray  # (L,) mean of per-case coverage (== empirical)
    case_low: np.ndarray  # t-interval over cases (valid for independent cases)
    case_high: np.ndarray
    random_pixel: np.ndarray  # (L,) coverage of one random pixel per case
    random_pixel_low: np.ndarray  # exact CP for independent cases
    random_pixel_high: np.ndarray
    maps: np.ndarray  # (L, *event) per-pixel coverage over cases
    map_low: np.ndarray  # (L, *event) CP over the N cases at each pixel
    map_high: np.ndarray
    per_case: np.ndarray  # (L, N) per-case mean coverage
    ece: float  # mean_levels |empirical - nominal|
    strata: dict[str, StratumCoverage]
    num_cases: int
    num_pixels: int


def _t_interval(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t interval along the last axis."""
    n = values.shape[-1]
    mean = values.mean(-1)
    if n < 2:
        return mean, np.zeros_like(mean), np.ones_like(mean)
    half = scipy.stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(-1, ddof=1) / math.sqrt(n)
    return mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)


def coverage(samples: Any, truths: Any, *, levels: Sequence[float] = DEFAULT_LEVELS, kind: str = "eti",
             masks: Mapping[str, Any] | None = None, confidence: float = 0.95,
             generator: torch.Generator | None = None, method: str = "linear") -> CoverageResult:
    """Empirical coverage of level-``p`` credible intervals for every level in ``levels``.

    Parameters
    ----------
    samples : ``(N, S, *event)`` array/tensor, or a list of N ``Posterior`` objects.
    truths : ``(N, *event)`` ground truths.
    levels : nominal levels in (0, 1); default 0.05, 0.10, ..., 0.95.
    kind : ``'eti'`` (equal-tailed) or ``'hpd'`` (per-pixel highest posterior density).
    masks : optional ``{name: (N, *event) bool}``; coverage is also reported over each region.
    confidence : confidence of every interval on a coverage figure.
    generator : draws the random pixel per case (a fixed default generator if None).
    method : sample-quantile rule of equal-tailed intervals (``'linear'`` or ``'weibull'``, see
        :func:`equal_tailed_intervals`; ``'weibull'`` removes the finite-S under-coverage).

    Returns
    -------
    CoverageResult (see the module docstring for what each interval assumes).
    """
    arr, tru = as_samples(samples, truths)
    lv = _check_levels(levels)
    n_cases = arr.shape[0]
    event = arr.shape[2:]
    n_pix = int(np.prod(event))
    strata_masks: dict[str, np.ndarray] = {}
    for name, mask in (masks or {}).items():
        m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if m.dtype != bool:
            raise ShapeError(f"masks[{name!r}] must be boolean, got dtype {m.dtype}")
        if m.shape != tru.shape:
            raise ShapeError(f"masks[{name!r}] must have shape (N, *event) = {tru.shape}, got {m.shape}")
        strata_masks[name] = m.reshape(n_cases, n_pix)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    pix = torch.randint(n_pix, (n_cases,), generator=gen).numpy()

    if kind not in ("eti", "hpd"):
        raise ValueError(f"kind must be 'eti' or 'hpd', got {kind!r}")
    ordered = np.sort(arr, axis=1)
    hits = np.empty((lv.size, n_cases, n_pix), dtype=bool)
    for i, level in enumerate(lv):
        lo, hi = credible_intervals(ordered, float(level), kind, presorted=True, method=method)
        hits[i] = ((lo <= tru) & (tru <= hi)).reshape(n_cases, n_pix)

    total = hits.reshape(lv.size, -1).sum(-1)
    cp_low, cp_high = clopper_pearson_interval(total, n_cases * n_pix, confidence)
    per_case = hits.mean(-1)
    case_mean, case_low, case_high = _t_interval(per_case, confidence)
    rp_hits = hits[:, np.arange(n_cases), pix].sum(-1)
    rp_low, rp_high = clopper_pearson_interval(rp_hits, n_cases, confidence)
    map_hits = hits.sum(1)
    map_low, map_high = clopper_pearson_interval(map_hits, n_cases, confidence)

    strata = {}
    for name, m in strata_masks.items():
        count = int(m.sum())
        k = (hits & m[None]).reshape(lv.size, -1).sum(-1)
        emp = k / count if count else np.full(lv.size, np.nan)
        s_lo, s_hi = clopper_pearson_interval(k, count, confidence) if count else (emp, emp)
        has = m.sum(-1) > 0
        frac = (hits[:, has] & m[None, has]).sum(-1) / m[has].sum(-1)
        c_mean, c_lo, c_hi = _t_interval(frac, confidence) if has.any() else (emp, emp, emp)
        strata[name] = StratumCoverage(emp, s_lo, s_hi, count, c_mean, c_lo, c_hi)

    empirical = total / (n_cases * n_pix)
    return CoverageResult(
        levels=lv, kind=kind, empirical=empirical, cp_low=cp_low, cp_high=cp_high, case_mean=case_mean,
        case_low=case_low, case_high=case_high, random_pixel=rp_hits / n_cases, random_pixel_low=rp_low,
        random_pixel_high=rp_high, maps=(map_hits / n_cases).reshape((lv.size,) + event),
        map_low=map_low.reshape((lv.size,) + event), map_high=map_high.reshape((lv.size,) + event),
        per_case=per_case, ece=float(np.mean(np.abs(empirical - lv))), strata=strata, num_cases=n_cases,
        num_pixels=n_pix)
