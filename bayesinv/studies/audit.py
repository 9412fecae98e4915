"""Hallucination audit of a study's results: numbers per sampler (the report renders them).

For each sampler on the test split (functions from :mod:`bayesinv.diagnostics.hallucination`):

* **null space** (Bhadra et al. 2021): the error of the posterior mean splits into a null-space part
  ``(I - A^+ A)(x_hat - x)``, which only the prior can have put there, and a measurement-space part
  ``A^+ A (x_hat - x)``; reported as RMS per pixel and the null-space share of the squared error;
* **data consistency**: ``||y - A x^(s)||^2 / sigma^2`` of every sample against ``chi^2`` (p-values are
  uniform for exact posterior draws); fraction rejected at level 0.01 with a Clopper–Pearson interval
  (samples of one case share ``y``, so the pooled count is over-dispersed), KS distance to uniform, a KS
  p-value from one sample per case (independent) and the p-value histogram;
* **z-maps**: fraction of pixels with ``|mean - truth| / std > 3`` against ``0.0027``;
* **lesion insertion**: ``P(lesion at c | y)`` = fraction of samples whose centre-surround contrast (disc
  mean minus annulus median, :func:`~bayesinv.diagnostics.hallucination.lesion_contrast`) at the case's
  audit centre exceeds ``spec.lesion_threshold`` (point estimates get 0 or 1), then ROC AUC, ROC curve,
  false-lesion rate (lesion-free cases with ``P > 1/2``) and missed-lesion rate with Clopper–Pearson
  intervals, Brier score, ECE and reliability-diagram data. The same detector on the *true* images
  (``truth_detector``) shows how much of the error is the detector's own;
* **out of distribution** (``ood`` split, when present): PSNR, coverage of the main-level intervals,
  chi^2 rejection and null-space error, beside the same numbers in distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats
import torch
from skimage.metrics import peak_signal_noise_ratio

from bayesinv.diagnostics.coverage import clopper_pearson_interval, equal_tailed_intervals
from bayesinv.diagnostics.hallucination import (data_consistency, lesion_audit, lesion_probability,
                                                nullspace_decomposition, z_map)
from bayesinv.operators.base import LinearOperator

__all__ = ["roc_curve", "nullspace_errors", "consistency_summary", "lesion_summary", "audit_sampler",
           "hallucination_verdict", "example_hallucination_maps"]


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of ``score >= t`` for every distinct threshold, from (0, 0) to (1, 1).

    >>> fpr, tpr = roc_curve(np.array([0.9, 0.2, 0.6]), np.array([True, False, True]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    labels = np.asarray(labels, dtype=bool)
    thresholds = np.unique(scores)[::-1]
    pos, neg = max(labels.sum(), 1), max((~labels).sum(), 1)
    tpr = [0.0] + [float((scores[labels] >= t).sum() / pos) for t in thresholds]
    fpr = [0.0] + [float((scores[~labels] >= t).sum() / neg) for t in thresholds]
    return np.asarray(fpr), np.asarray(tpr)


def nullspace_errors(operator: LinearOperator, estimate: torch.Tensor,
                     truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``((I - A^+ A)(x_hat - x), A^+ A (x_hat - x))`` for one image ``(C, H, W)``, via ``operator.pinv``."""
    null = nullspace_decomposition(operator, torch.stack([estimate, truth])).null
    null_err = null[0] - null[1]
    return null_err, (estimate - truth) - null_err


def _cp(k: int, n: int) -> list[float]:
    lo, hi = clopper_pearson_interval(k, n) if n else (np.nan, np.nan)
    return [float(lo), float(hi)]


def consistency_summary(problem, data, generator: torch.Generator, level: float = 0.01) -> dict:
    """Chi-squared data-consistency p-values of every sample of every case, summarised."""
    per_case = [data_consistency(problem.operator, problem.noise, y, s, level=level, generator=generator).pvalues
                for y, s in zip(data.ys, data.samples)]
    pvals = torch.cat(per_case).numpy()
    first = np.asarray([float(p[0]) for p in per_case])  # one sample per case: independent p-values
    rejected = int((pvals < level).sum())
    counts = np.histogram(pvals, bins=10, range=(0, 1))[0]
    return {"level": level, "rejected": rejected / pvals.size, "rejected_cp": _cp(rejected, pvals.size),
            "num_tests": int(pvals.size), "ks": float(scipy.stats.kstest(pvals, "uniform").statistic),
            "pvalue_ks_first": float(scipy.stats.kstest(first, "uniform").pvalue), "pvalue_hist": counts.tolist()}


def lesion_summary(data, threshold: float) -> dict | None:
    """Lesion-insertion audit of ``P(lesion | y)`` (None unless the split has cases with and without lesions)."""
    has = data.has_lesion
    if has.all() or not has.any():
        return None
    prob = lesion_probability(data.samples, data.centres, threshold=threshold)
    res = lesion_audit(prob, has)
    oracle = lesion_audit(lesion_probability(data.truths[:, None], data.centres, threshold=threshold), has)
    n_neg, n_pos = int((~has).sum()), int(has.sum())
    fpr, tpr = roc_curve(prob.numpy(), has.numpy())
    return {"prob": prob.tolist(), "has_lesion": has.tolist(), "auc": res.auc,
            "false_lesion_rate": res.false_lesion_rate, "false_lesion_cp": list(res.false_lesion_cp),
            "false_lesions": int(round(res.false_lesion_rate * n_neg)), "num_lesion_free": n_neg,
            "missed_lesion_rate": res.missed_lesion_rate, "missed_lesion_cp": list(res.missed_lesion_cp),
            "missed_lesions": int(round(res.missed_lesion_rate * n_pos)), "num_lesion": n_pos,
            "brier": res.brier, "ece": res.ece, "reliability": res.reliability, "roc_fpr": fpr.tolist(),
            "roc_tpr": tpr.tolist(), "truth_detector": {"false_lesion_rate": oracle.false_lesion_rate,
                                                        "missed_lesion_rate": oracle.missed_lesion_rate}}


def _null_stats(problem, data) -> tuple[dict | None, np.ndarray | None]:
    if not isinstance(problem.operator, LinearOperator):
        return None, None
    means = data.samples.mean(1)
    null_sq, meas_sq, maps = [], [], []
    for mean, truth in zip(means, data.truths):
        null_err, meas_err = nullspace_errors(problem.operator, mean, truth)
        null_sq.append(float((null_err**2).mean()))
        meas_sq.append(float((meas_err**2).mean()))
        maps.append(null_err.abs())
    null_sq, meas_sq = np.asarray(null_sq), np.asarray(meas_sq)
    share = float(null_sq.sum() / max(null_sq.sum() + meas_sq.sum(), 1e-300))
    return ({"null_rms": float(np.sqrt(null_sq.mean())), "measurement_rms": float(np.sqrt(meas_sq.mean())),
             "null_share": share}, torch.stack(maps).mean(0)[0].numpy())


def _main_coverage(data, level: float) -> float | None:
    if data.point_estimate:
        return None
    lo, hi = equal_tailed_intervals(data.samples.numpy(), level, method="weibull")
    tru = data.truths.numpy()
    return float(((lo <= tru) & (tru <= hi)).mean())


def _psnr(data) -> float:
    mean = data.samples.mean(1).clamp(0, 1).numpy()
    return float(np.mean([peak_signal_noise_ratio(t, m, data_range=1.0) for m, t in zip(mean, data.truths.numpy())]))


def audit_sampler(spec, problem, test, ood=None) -> tuple[dict, dict[str, np.ndarray]]:
    """The hallucination audit of one sampler (JSON-ready numbers, and maps for the figures)."""
    generator = torch.Generator().manual_seed(spec.seed)
    level = 1 - spec.alpha
    out: dict[str, Any] = {"point_estimate": test.point_estimate}
    out["chi2"] = consistency_summary(problem, test, generator)
    null, null_map = _null_stats(problem, test)
    out["nullspace"] = null
    maps = {} if null_map is None else {"null_error_map": null_map}
    if test.point_estimate:
        out["z"] = None
    else:
        zs = [z_map(s.mean(0), s.std(0, correction=1), t) for s, t in zip(test.samples, test.truths)]
        out["z"] = {"fraction_above": float(np.mean([z.fraction_above for z in zs])),
                    "expected_fraction": zs[0].expected_fraction, "threshold": zs[0].threshold}
    out["lesion"] = lesion_summary(test, spec.lesion_threshold)
    if ood is not None:
        ood_null, _ = _null_stats(problem, ood)
        out["ood"] = {"family": spec.ood_family, "num_cases": int(ood.samples.shape[0]),
                      "psnr": _psnr(ood), "psnr_test": _psnr(test),
                      "coverage": _main_coverage(ood, level), "coverage_test": _main_coverage(test, level),
                      "chi2_rejected": consistency_summary(problem, ood, generator)["rejected"],
                      "chi2_rejected_test": out["chi2"]["rejected"],
                      "null_rms": None if ood_null is None else ood_null["null_rms"],
                      "null_rms_test": None if null is None else null["null_rms"]}
    else:
        out["ood"] = None
    return out, maps


def hallucination_verdict(h: dict) -> str:
    """A plain-language summary of one sampler's audit.

    >>> hallucination_verdict({"lesion": None, "chi2": {"rejected": 0.01, "level": 0.01}, "z": None, "ood": None,
    ...                        "nullspace": None})
    'data consistency: chi² rejects 1.0% of samples at level 0.01 (1.0% expected for exact posterior draws)'
    """
    parts = []
    les = h.get("lesion")
    if les:
        parts.append(f"invents a lesion in {les['false_lesions']}/{les['num_lesion_free']} lesion-free cases "
                     f"({100 * les['false_lesion_rate']:.0f}% [{100 * les['false_lesion_cp'][0]:.0f}, "
                     f"{100 * les['false_lesion_cp'][1]:.0f}]), misses {les['missed_lesions']}/{les['num_lesion']} "
                     f"lesions; P(lesion|y) has ECE {les['ece']:.2f}, Brier {les['brier']:.3f}, AUC {les['auc']:.2f}")
    chi = h["chi2"]
    parts.append(f"data consistency: chi² rejects {100 * chi['rejected']:.1f}% of samples at level {chi['level']:g} "
                 f"({100 * chi['level']:.1f}% expected for exact posterior draws)")
    if h.get("z"):
        z = h["z"]
        ratio = z["fraction_above"] / z["expected_fraction"]
        parts.append(f"|z| > 3 on {100 * z['fraction_above']:.2f}% of pixels ({ratio:.1f}x the calibrated "
                     f"{100 * z['expected_fraction']:.2f}%)")
    if h.get("nullspace"):
        parts.append(f"{100 * h['nullspace']['null_share']:.0f}% of the squared error of the mean lies in the "
                     "null space of A")
    if h.get("ood"):
        o = h["ood"]
        parts.append(f"out of distribution ({o['family']}): PSNR {o['psnr']:.1f} dB vs {o['psnr_test']:.1f} dB in "
                     "distribution" + (f", coverage {100 * o['coverage']:.0f}% vs {100 * o['coverage_test']:.0f}%"
                                       if o["coverage"] is not None else ""))
    return "; ".join(parts)


def example_hallucination_maps(problem, data: dict, index: int) -> dict[str, np.ndarray]:
    """Per sampler for test case ``index``: |null-space error| of the mean and the z-map (channel 0)."""
    out = {}
    for label, d in data.items():
        mean = d.samples[index].mean(0)
        if isinstance(problem.operator, LinearOperator):
            out[f"{label}/null"] = nullspace_errors(problem.operator, mean, d.truths[index])[0].abs()[0].numpy()
        if not d.point_estimate:
            out[f"{label}/z"] = z_map(mean, d.samples[index].std(0, correction=1), d.truths[index]).z[0].numpy()
    return out
