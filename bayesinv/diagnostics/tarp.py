"""TARP: tests of accuracy with random points (Lemos, Coogan et al. 2023, "Sampling-based accuracy
testing of posterior estimators for general inference", ICML, arXiv:2302.03026).

For each case ``n`` draw a reference point ``r_n`` (independently of the samples) and count the
fraction of posterior samples closer to ``r_n`` than the truth is,
``f_n = #{s : d(x_n^(s), r_n) < d(x_n, r_n)} / S``. The ball around ``r_n`` with radius
``d(x_n, r_n)`` is a credible region of level ``f_n``; the expected coverage probability
``ECP(alpha) = P(f_n < alpha)`` equals ``alpha`` for all ``alpha`` iff the posterior estimator is
correct (Theorem 3 of the paper, for references whose law has full support). This is a test on
whole images (the joint space), not pixel by pixel.

Algorithm as in the authors' reference implementation (``tarp/drp.py``, ``get_tarp_coverage``):
normalise every dimension using the truths only, draw references uniformly over the normalised
range, compute Euclidean (or Manhattan) distances, ``f = mean(d_samples < d_truth)``. Differences
(deliberate): ``ECP`` is the empirical CDF, on a fixed ``alpha`` grid in [0, 1], of the randomised
``u_n = (k_n + V_n) / (S + 1)``, ``V_n ~ U(0, 1)`` (exactly uniform under a correct posterior, so the
curve has no ``O(1/S)`` discreteness bias), instead of a histogram of ``f_n`` over its observed range;
normalisation defaults to standardising with the truths' mean/std (``'range'`` reproduces the
reference min/max scaling); the band is a proper bootstrap over cases (resampled with replacement)
rather than the reference's sequential replacement scheme; randomness comes from a ``torch.Generator``.

Summaries: ``max_deviation = max_alpha |ECP - alpha|`` with a simultaneous bootstrap band for it,
``atc = integral (ECP(alpha) - alpha) d alpha`` (signed area between curve and diagonal), and a KS test
of ``u_n`` against U(0, 1).

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> truths = torch.randn(300, 5, generator=g)
>>> samples = torch.randn(300, 40, 5, generator=g)      # exact: posterior = prior here
>>> res = tarp(samples, truths, generator=g, num_bootstrap=50)
>>> bool(res.max_deviation <= res.deviation_band)
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.stats
import torch

from bayesinv.diagnostics.coverage import as_array, as_samples
from bayesinv.errors import ShapeError

__all__ = ["TarpResult", "tarp_references", "tarp_fractions", "expected_coverage", "tarp"]


class TarpResult(NamedTuple):
    """Output of :func:`tarp`."""

    alpha: np.ndarray  # (K,) credibility levels, 0..1
    ecp: np.ndarray  # (K,) expected coverage probability
    band_low: np.ndarray  # (K,) pointwise bootstrap percentile band
    band_high: np.ndarray
    fractions: np.ndarray  # (N,) f_n
    max_deviation: float  # max |ECP - alpha|
    deviation_band: float  # bootstrap quantile of max |ECP* - ECP| (simultaneous band half-width)
    atc: float  # integral of (ECP - alpha)
    ks: float
    pvalue_ks: float


def _normalise(samples: np.ndarray, truths: np.ndarray, normalize: str | None) -> tuple[np.ndarray, np.ndarray]:
    if normalize is None:
        return samples, truths
    if normalize == "standardize":
        shift = truths.mean(0)
        scale = truths.std(0)
    elif normalize == "range":
        shift = truths.min(0)
        scale = truths.max(0) - shift
    else:
        raise ValueError(f"normalize must be 'standardize', 'range' or None, got {normalize!r}")
    scale = np.where(scale > 1e-12, scale, 1.0)
    return (samples - shift) / scale, (truths - shift) / scale


def tarp_references(truths: np.ndarray, method: str, generator: torch.Generator) -> np.ndarray:
    """One reference point per case, ``(N, D)``, from the (normalised) truths ``(N, D)``.

    ``'uniform'``: uniform over the per-dimension range ``[min, max]`` of the truths (the reference
    implementation's unit hypercube after min/max scaling). ``'truths'``: a random permutation of the
    truths plus standard normal noise (a smooth density near the data).
    """
    n, d = truths.shape
    if method == "uniform":
        low, high = truths.min(0), truths.max(0)
        u = torch.rand((n, d), generator=generator, dtype=torch.float64).numpy()
        return low + u * (high - low)
    if method == "truths":
        perm = torch.randperm(n, generator=generator).numpy()
        noise = torch.randn((n, d), generator=generator, dtype=torch.float64).numpy()
        return truths[perm] + noise
    raise ValueError(f"references must be 'uniform', 'truths' or an (N, D) array, got {method!r}")


def tarp_fractions(samples: np.ndarray, truths: np.ndarray, references: np.ndarray,
                   metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """``k_n = #{s : d(x^(s), r) < d(x, r)}`` and ``f_n = k_n / S`` for flattened ``(N, S, D)``, ``(N, D)``."""
    diff_s = samples - references[:, None]
    diff_t = truths - references
    if metric == "euclidean":
        d_s, d_t = np.sqrt((diff_s**2).sum(-1)), np.sqrt((diff_t**2).sum(-1))
    elif metric == "manhattan":
        d_s, d_t = np.abs(diff_s).sum(-1), np.abs(diff_t).sum(-1)
    else:
        raise ValueError(f"metric must be 'euclidean' or 'manhattan', got {metric!r}")
    closer = (d_s < d_t[:, None]).sum(1)
    return closer, closer / samples.shape[1]


def expected_coverage(fractions: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``ECP(alpha) = mean_n 1[f_n < alpha]`` (with ``ECP(1) = 1``), vectorised over alpha and leading axes."""
    ecp = (fractions[..., None, :] < alpha[:, None]).mean(-1)
    ecp[..., alpha >= 1] = 1.0
    return ecp


def tarp(samples: Any, truths: Any, *, references: str | Any = "uniform", normalize: str | None = "standardize",
         metric: str = "euclidean", num_alpha: int = 100, num_bootstrap: int = 200, confidence: float = 0.95,
         generator: torch.Generator) -> TarpResult:
    """TARP expected-coverage curve of whole images with a bootstrap band.

    Parameters
    ----------
    samples : ``(N, S, *event)`` or a list of N ``Posterior``; truths ``(N, *event)``.
    references : ``'uniform'``, ``'truths'`` (see :func:`tarp_references`) or an ``(N, *event)`` array
        given in the *normalised* coordinates.
    normalize : ``'standardize'`` (truths' mean/std per dimension), ``'range'`` (min/max, as the
        reference implementation) or None.
    num_alpha : the alpha grid has ``num_alpha + 1`` points from 0 to 1.
    num_bootstrap : bootstrap resamples of the cases for the bands.
    generator : references, bootstrap and the KS randomisation.
    """
    arr, tru = as_samples(samples, truths)
    n_cases, num = arr.shape[:2]
    flat_s, flat_t = _normalise(arr.reshape(n_cases, num, -1), tru.reshape(n_cases, -1), normalize)
    if isinstance(references, str):
        refs = tarp_references(flat_t, references, generator)
    else:
        refs = as_array("references", references).reshape(n_cases, -1)
        if refs.shape != flat_t.shape:
            raise ShapeError(f"references must have shape (N, *event) matching truths, got {refs.shape}")
    closer, frac = tarp_fractions(flat_s, flat_t, refs, metric)
    u = (closer + torch.rand(n_cases, generator=generator, dtype=torch.float64).numpy()) / (num + 1)

    alpha = np.linspace(0.0, 1.0, num_alpha + 1)
    ecp = expected_coverage(u, alpha)
    idx = torch.randint(n_cases, (num_bootstrap, n_cases), generator=generator).numpy()
    boot = expected_coverage(u[idx], alpha)
    a = 1.0 - confidence
    band_low, band_high = np.quantile(boot, [a / 2, 1 - a / 2], axis=0)
    dev_band = float(np.quantile(np.abs(boot - ecp).max(-1), confidence))
    ks = scipy.stats.kstest(u, "uniform")
    atc = float(np.trapezoid(ecp - alpha, alpha))
    return TarpResult(alpha, ecp, band_low, band_high, frac, float(np.abs(ecp - alpha).max()), dev_band, atc,
                      float(ks.statistic), float(ks.pvalue))
