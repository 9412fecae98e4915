"""Simulation-based calibration (Talts et al. 2018, "Validating Bayesian inference algorithms with
simulation-based calibration", arXiv:1804.06788).

If ``x ~ prior``, ``y ~ p(y|x)`` and ``x^(1..S) ~ p(x|y)`` exactly, the rank of any statistic of the
truth among the same statistic of the S samples, ``r = #{s : f(x^(s)) < f(x)}`` (ties broken
uniformly at random), is uniform on ``{0, ..., S}``. We rank every pixel and scalar summaries
(mean intensity, contrast inside vs outside a mask, a random projection ``<w, x>`` with ``w`` drawn
from a generator) and test uniformity two ways:

* chi-squared on the ranks binned into ``B`` bins, with the exact bin probabilities
  ``#ranks in bin / (S + 1)`` (so ``B`` need not divide ``S + 1``);
* Kolmogorov–Smirnov on ``u = (r + V) / (S + 1)``, ``V ~ U(0, 1)``, which is exactly U(0, 1) under
  calibration.

The histogram band is the simple Talts band made simultaneous by a Bonferroni correction: each bin
count is ``Binomial(n, p_b)``; the band spans its ``a / (2B)`` and ``1 - a / (2B)`` quantiles, so all
``B`` bins fall inside it with probability >= ``1 - a`` under uniformity (conservative; Säilynoja et
al. 2022 give a sharper ECDF band). Pooled *pixel* ranks are dependent across pixels of one image,
so their p-values are exact only for independent pixels; the scalar summaries (one rank per case)
are valid under independent cases.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> truths = torch.randn(300, 3, generator=g)
>>> samples = torch.randn(300, 19, 3, generator=g)
>>> res = sbc(samples, truths, generator=g)
>>> bool(res.pixels.pvalue_ks > 1e-3)
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.stats
import torch

from bayesinv.diagnostics.coverage import as_samples
from bayesinv.errors import ShapeError

__all__ = ["sbc_ranks", "rank_histogram", "RankTest", "SBCResult", "rank_uniformity", "summary_statistics", "sbc"]


def _uniform(shape: tuple[int, ...], generator: torch.Generator) -> np.ndarray:
    return torch.rand(shape, generator=generator, dtype=torch.float64).numpy()


def sbc_ranks(samples: np.ndarray, truths: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Ranks ``#{s : x^(s) < x} + U{0..#{s : x^(s) = x}}`` of truths ``(N, *k)`` among samples ``(N, S, *k)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> sbc_ranks(np.array([[0.1, 0.5, 0.9]]), np.array([0.6]), g).tolist()
    [2]
    """
    less = (samples < truths[:, None]).sum(1)
    ties = (samples == truths[:, None]).sum(1)
    extra = np.floor(_uniform(ties.shape, generator) * (ties + 1)).astype(np.int64)
    return less + extra


def _bin_edges(num_samples: int, num_bins: int) -> np.ndarray:
    """Integer rank edges splitting ``0..S`` into ``num_bins`` nearly equal bins."""
    if not 1 <= num_bins <= num_samples + 1:
        raise ValueError(f"num_bins must be in [1, S + 1 = {num_samples + 1}], got {num_bins}")
    return np.round(np.linspace(0, num_samples + 1, num_bins + 1)).astype(np.int64)


def rank_histogram(ranks: np.ndarray, num_samples: int, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ranks per bin and the exact bin probabilities under uniform ranks on ``0..S``."""
    edges = _bin_edges(num_samples, num_bins)
    counts = np.histogram(ranks.reshape(-1), bins=edges)[0]
    probs = np.diff(edges) / (num_samples + 1)
    return counts, probs


class RankTest(NamedTuple):
    """Uniformity tests of one set of SBC ranks."""

    ranks: np.ndarray  # integer ranks in 0..S
    counts: np.ndarray  # (B,) histogram
    expected: np.ndarray  # (B,) expected counts under uniformity
    band_low: np.ndarray  # (B,) simultaneous (Bonferroni) binomial band for the counts
    band_high: np.ndarray
    chi2: float
    pvalue_chi2: float
    ks: float
    pvalue_ks: float
    outside_band: int  # bins whose count is outside the band


def rank_uniformity(ranks: np.ndarray, num_samples: int, *, num_bins: int | None = None, confidence: float = 0.99,
                    generator: torch.Generator) -> RankTest:
    """Chi-squared and randomised KS uniformity tests of ranks, and the histogram with its band."""
    ranks = np.asarray(ranks).reshape(-1)
    n = ranks.size
    if num_bins is None:
        num_bins = int(min(num_samples + 1, max(2, n // 10), 20))
    counts, probs = rank_histogram(ranks, num_samples, num_bins)
    expected = n * probs
    chi2, p_chi2 = scipy.stats.chisquare(counts, expected)
    a = 1.0 - confidence
    band_low = scipy.stats.binom.ppf(a / (2 * num_bins), n, probs)
    band_high = scipy.stats.binom.ppf(1 - a / (2 * num_bins), n, probs)
    u = (ranks + _uniform((n,), generator)) / (num_samples + 1)
    ks = scipy.stats.kstest(u, "uniform")
    outside = int(((counts < band_low) | (counts > band_high)).sum())
    return RankTest(ranks, counts, expected, band_low, band_high, float(chi2), float(p_chi2), float(ks.statistic),
                    float(ks.pvalue), outside)


def summary_statistics(x: np.ndarray, *, inside: np.ndarray | None = None,
                       direction: np.ndarray) -> dict[str, np.ndarray]:
    """Scalar summaries of images ``x`` ``(N, [S,] P)`` (flattened events): mean, projection, contrast.

    ``contrast`` = mean over ``inside`` pixels minus mean over the rest (``inside`` is ``(N, P)``).
    """
    stats = {"mean_intensity": x.mean(-1), "random_projection": x @ direction}
    if inside is not None:
        m = inside if x.ndim == 2 else inside[:, None, :]
        n_in = m.sum(-1)
        n_out = m.shape[-1] - n_in
        stats["contrast"] = (x * m).sum(-1) / np.maximum(n_in, 1) - (x * ~m).sum(-1) / np.maximum(n_out, 1)
    return stats


class SBCResult(NamedTuple):
    """Output of :func:`sbc`: the pooled-pixel test and one test per scalar summary."""

    pixels: RankTest
    summaries: dict[str, RankTest]
    num_samples: int
    num_cases: int


def sbc(samples: Any, truths: Any, *, mask: Any | None = None, num_bins: int | None = None,
        confidence: float = 0.99, generator: torch.Generator) -> SBCResult:
    """Simulation-based calibration of pixels and scalar summaries.

    Parameters
    ----------
    samples : ``(N, S, *event)`` or a list of N ``Posterior``; truths ``(N, *event)`` drawn from the prior.
    mask : optional ``(N, *event)`` bool; adds the ``contrast`` summary (inside minus outside).
    num_bins : histogram bins (default ``min(S + 1, n / 10, 20)``).
    confidence : coverage of the simultaneous histogram band.
    generator : tie-breaking, KS randomisation and the random projection direction.
    """
    arr, tru = as_samples(samples, truths)
    n_cases, num = arr.shape[:2]
    flat_s = arr.reshape(n_cases, num, -1)
    flat_t = tru.reshape(n_cases, -1)
    inside = None
    if mask is not None:
        m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if m.dtype != bool or m.shape != tru.shape:
            raise ShapeError(f"mask must be a bool array of shape {tru.shape}, got {m.dtype} {m.shape}")
        inside = m.reshape(n_cases, -1)
    direction = torch.randn(flat_t.shape[1], generator=generator, dtype=torch.float64).numpy()
    direction /= np.linalg.norm(direction)

    kw = dict(num_bins=num_bins, confidence=confidence, generator=generator)
    pixels = rank_uniformity(sbc_ranks(flat_s, flat_t, generator), num, **kw)
    s_stats = summary_statistics(flat_s, inside=inside, direction=direction)
    t_stats = summary_statistics(flat_t, inside=inside, direction=direction)
    summaries = {name: rank_uniformity(sbc_ranks(s_stats[name], t_stats[name], generator), num, **kw)
                 for name in s_stats}
    return SBCResult(pixels, summaries, num, n_cases)
