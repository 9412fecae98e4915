"""Analyse a study's results folder: every calibration diagnostic, per sampler, as numbers.

:func:`analyze_study` reads the posteriors of the calibration and test splits and writes
``analysis.json`` (curves, tables, verdicts) and ``analysis.safetensors`` (maps and example images
for the figures) into the results folder. :mod:`bayesinv.report` renders them; nothing is computed there.

Per sampler (test split unless stated):

* coverage of equal-tailed (sample quantiles at Weibull positions ``p (S + 1)``, so exact samples cover
  ``p`` on average for any S) and HPD intervals at the study's levels, pooled-pixel Clopper–Pearson
  bands, per-case t-intervals, ECE, coverage maps, strata lesion / edges / background
  (:func:`bayesinv.diagnostics.coverage`);
* SBC ranks of pixels and of the scalar summaries mean intensity, lesion contrast and a random
  projection (:func:`bayesinv.diagnostics.sbc`); TARP on whole images (:func:`bayesinv.diagnostics.tarp`);
* conformal recalibration learned on the calibration split and evaluated on the test split: RCPS
  (Hoeffding–Bentkus; Angelopoulos et al. 2022) and conformal risk control (CRC, Angelopoulos et al.
  2024; tight in expectation, usable with tens of cases) with a scalar scale, and CRC per pixel and
  grouped (K-RCPS-style, four groups by the calibration-average interval width). Point-estimate baselines get intervals
  ``x_hat -/+ lambda w`` from the calibration residuals (per-pixel scale), and their coverage curve is
  that of split-conformal intervals with the residual quantile at each level;
* PSNR/SSIM of the posterior mean, NFE and seconds per case, and a plain-language verdict.

The hallucination audit (``audit=True``) is in :mod:`bayesinv.studies.audit`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.ndimage
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm.auto import tqdm

import bayesinv
from bayesinv.diagnostics import conformal
from bayesinv.diagnostics.coverage import clopper_pearson_interval, coverage, equal_tailed_intervals
from bayesinv.diagnostics.sbc import sbc
from bayesinv.diagnostics.tarp import tarp
from bayesinv.posterior import Posterior
from bayesinv.studies import store
from bayesinv.studies.lock import study_lock
from bayesinv.studies.runner import load_case, result_path, result_problem, sampler_cases, splits, study_problem
from bayesinv.studies.spec import StudySpec

__all__ = ["SplitData", "load_split", "region_masks", "calibration_summary", "verdict", "analyze_study"]


class SplitData(NamedTuple):
    """One sampler's results on one split, stacked."""

    samples: torch.Tensor  # (N, S, C, H, W) float64 (real part)
    truths: torch.Tensor  # (N, C, H, W)
    ys: list  # N measurements (1, *out_shape)
    lesion_masks: torch.Tensor  # (N, C, H, W) bool
    has_lesion: torch.Tensor  # (N,) bool
    centres: torch.Tensor  # (N, 2) where the lesion audit looks
    nfe: float  # mean NFE per chain
    wall_time: float  # mean seconds per case
    point_estimate: bool


def load_split(results: Path, spec: StudySpec, label: str, split: str, problem=None) -> SplitData:
    """Stack the results of sampler ``label`` on ``split``; raise if any is missing, broken or stale (made
    by another spec: only results that verify against ``spec`` are used)."""
    n = sampler_cases(spec, label, split)
    missing = {i: why for i in range(n) if (why := result_problem(results, spec, label, split, i, problem))}
    if missing:
        first, why = next(iter(missing.items()))
        raise FileNotFoundError(f"{len(missing)} of {n} '{split}' results of sampler '{label}' are missing or "
                                f"do not match the spec in {results} (first: {result_path(results, label, split, first)}"
                                f": {why}); run the study (it resumes) first")
    posts = [Posterior.load(result_path(results, label, split, i)) for i in range(n)]
    cases = [load_case(results, split, i) for i in range(n)]
    samples = torch.stack([p.flat().real.double() if p.flat().is_complex() else p.flat().double() for p in posts])
    return SplitData(samples, torch.stack([c["truth"].double() for c in cases]), [c["y"][None] for c in cases],
                     torch.stack([c["lesion_mask"].bool() for c in cases]),
                     torch.tensor([c["has_lesion"] for c in cases]), torch.stack([c["audit_center"] for c in cases]),
                     float(np.mean([p.nfe for p in posts])), float(np.mean([p.wall_time for p in posts])),
                     bool(posts[0].point_estimate or samples.shape[1] == 1))


def region_masks(truths: torch.Tensor, lesion_masks: torch.Tensor, edge_threshold: float = 0.1) -> dict:
    """Pixel strata: ``lesion``; ``edges`` (Sobel gradient magnitude of the truth > threshold, off-lesion);
    ``background`` (the rest). Boolean numpy arrays ``(N, C, H, W)``."""
    t = truths.numpy()
    grad = np.hypot(scipy.ndimage.sobel(t, axis=-1, mode="nearest"), scipy.ndimage.sobel(t, axis=-2, mode="nearest"))
    lesion = lesion_masks.numpy().astype(bool)
    edges = (grad / 8 > edge_threshold) & ~lesion  # Sobel returns 8x the per-pixel slope of a ramp
    return {"lesion": lesion, "edges": edges, "background": ~lesion & ~edges}


def _curve(res) -> dict:
    return {"levels": res.levels.tolist(), "empirical": res.empirical.tolist(), "cp_low": res.cp_low.tolist(),
            "cp_high": res.cp_high.tolist(), "case_low": res.case_low.tolist(), "case_high": res.case_high.tolist()}


def _level_index(levels: np.ndarray, level: float) -> int:
    idx = int(np.argmin(np.abs(levels - level)))
    if abs(levels[idx] - level) > 1e-9:
        raise ValueError(f"the main level {level} is not among the study's levels {levels.tolist()}")
    return idx


def _interval_stats(lower, upper, truths: np.ndarray) -> dict:
    """Coverage of given intervals: pooled, CP over pixels, t-interval over cases, mean width."""
    risk = conformal.miscoverage_risk(lower, upper, truths)
    cov_case = 1 - risk
    n_pix = truths[0].size
    hits = int(round(cov_case.sum() * n_pix))
    lo, hi = clopper_pearson_interval(hits, truths.shape[0] * n_pix)
    half = 1.96 * cov_case.std(ddof=1) / math.sqrt(len(cov_case)) if len(cov_case) > 1 else 1.0
    return {"coverage": float(cov_case.mean()), "cp": [float(lo), float(hi)],
            "case_ci": [float(max(cov_case.mean() - half, 0)), float(min(cov_case.mean() + half, 1))],
            "width": float(np.mean(upper - lower))}


def _width_groups(width_map: np.ndarray, k: int = 4) -> np.ndarray:
    """Label map of ``k`` groups of pixels by quantiles of a width map (K-RCPS-style grouping)."""
    edges = np.quantile(width_map, np.linspace(0, 1, k + 1)[1:-1])
    return np.digitize(width_map, edges)


def _recalibrate(spec: StudySpec, cal: SplitData, test: SplitData, generator: torch.Generator) -> dict:
    """Conformal recalibration on the calibration split -> coverage of the new intervals on the test split.

    Variants: ``rcps`` (Hoeffding–Bentkus, risk <= alpha w.p. 1 - delta) and ``crc`` (conformal risk
    control, expected risk <= alpha), with one scalar ``lambda``; ``crc_pixel`` and ``crc_grouped`` (four
    groups of pixels by calibration-average width; samplers only) learn spatial weights on half of the
    calibration cases. Point estimates start from ``x_hat -/+ 1`` (``lambda`` is then a half-width).
    """
    level = 1 - spec.alpha
    c_tru, t_tru = cal.truths.numpy(), test.truths.numpy()
    if cal.point_estimate:
        c_bounds = conformal.point_bounds(cal.samples[:, 0])
        t_bounds = conformal.point_bounds(test.samples[:, 0])
        variants = {"rcps": ("scalar", "hb"), "crc": ("scalar", "crc"), "crc_pixel": ("pixel", "crc")}
    else:
        c_bounds = conformal.sample_bounds(cal.samples, level)
        t_bounds = conformal.sample_bounds(test.samples, level)
        groups = _width_groups((c_bounds[2] - c_bounds[1]).mean(0))
        variants = {"rcps": ("scalar", "hb"), "crc": ("scalar", "crc"), "crc_pixel": ("pixel", "crc"),
                    "crc_grouped": (groups, "crc")}
    out = {}
    for name, (groups, method) in variants.items():
        res = conformal.rcps_calibrate(*c_bounds, c_tru, alpha=spec.alpha, delta=spec.delta, groups=groups,
                                       generator=generator, method=method)
        lo, hi = conformal.rcps_apply(res, *t_bounds)
        stats = _interval_stats(lo, hi, t_tru)
        out[name] = {"lambda": float(np.mean(res.lam)), "beta": res.beta, "controlled": res.controlled,
                     "bound": res.ucb, "method": method, "num_calibration": res.num_rcps,
                     "coverage_after": stats["coverage"], "cp_after": stats["cp"],
                     "case_ci_after": stats["case_ci"], "width_after": stats["width"],
                     "width_before": float(np.mean(t_bounds[2] - t_bounds[1]))}
    return out


def _split_conformal_curve(cal: SplitData, test: SplitData, levels: np.ndarray) -> dict:
    """Coverage of ``x_hat -/+ q_p`` (``q_p``: the level-``p`` quantile of calibration |residuals|)."""
    resid = (cal.samples[:, 0] - cal.truths).abs().numpy().reshape(-1)
    est, tru = test.samples[:, 0].numpy(), test.truths.numpy()
    rows = [_interval_stats(est - q, est + q, tru) for q in np.quantile(resid, levels, method="higher")]
    return {"levels": levels.tolist(), "empirical": [r["coverage"] for r in rows],
            "cp_low": [r["cp"][0] for r in rows], "cp_high": [r["cp"][1] for r in rows],
            "case_low": [r["case_ci"][0] for r in rows], "case_high": [r["case_ci"][1] for r in rows]}


def verdict(level: float, cov: float | None, ci: tuple[float, float] | None, after: dict | None) -> tuple[str, str]:
    """Plain-language verdict and a CSS class (``ok``/``bad``/``warn``) from coverage numbers.

    ``ci`` is the interval over test cases. Entirely below ``level``: over-confident; entirely above:
    under-confident. When it contains ``level`` the sampler is called calibrated only if the interval is
    narrower than the miscoverage ``1 - level`` itself (10 points at 90%); a wider one cannot tell a
    calibrated sampler from a badly over- or under-confident one, and the verdict says so.

    >>> verdict(0.9, 0.84, (0.82, 0.86), None)[0]
    '90% intervals cover 84.0% [82.0, 86.0] of pixels — over-confident'
    >>> verdict(0.9, 0.666, (0.316, 1.0), None)
    ('90% intervals cover 66.6% [31.6, 100.0] of pixels — too few cases to tell', 'warn')
    """
    pct = f"{100 * level:.0f}%"
    if cov is None:
        text, css = f"point estimate: no {pct} intervals of its own", "warn"
    else:
        if ci[1] < level:
            status, css = "over-confident", "bad"
        elif ci[0] > level:
            status, css = "under-confident (intervals wider than needed)", "warn"
        elif ci[1] - ci[0] > 1 - level:
            status, css = "too few cases to tell", "warn"
        else:
            status, css = "calibrated within the uncertainty", "ok"
        text = f"{pct} intervals cover {100 * cov:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] of pixels — {status}"
    if after is not None and not after["controlled"]:
        text += (f"; conformal recalibration cannot reach risk {1 - level:g} with only {after['num_calibration']} "
                 "calibration cases")
    elif after is not None:
        lo, hi = after["case_ci_after"]
        ratio = after["width_after"] / max(after["width_before"], 1e-12)
        text += (f"; after recalibration {100 * after['coverage_after']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
                 f"(width x{ratio:.2f})")
    return text, css


def _image_quality(mean: np.ndarray, truths: np.ndarray) -> tuple[float, float]:
    psnr = [peak_signal_noise_ratio(t[0], np.clip(m[0], 0, 1), data_range=1.0) for m, t in zip(mean, truths)]
    ssim = [structural_similarity(t[0], np.clip(m[0], 0, 1), data_range=1.0, win_size=7) for m, t in zip(mean, truths)]
    return float(np.mean(psnr)), float(np.mean(ssim))


def calibration_summary(spec: StudySpec, cal: SplitData, test: SplitData, *,
                        generator: torch.Generator) -> tuple[dict, dict[str, np.ndarray]]:
    """All calibration numbers of one sampler (JSON-ready) and its maps (arrays for the figures)."""
    level = 1 - spec.alpha
    levels = np.asarray(spec.levels)
    i_main = _level_index(levels, level)
    mean = test.samples.mean(1).numpy()
    psnr, ssim = _image_quality(mean, test.truths.numpy())
    out: dict[str, Any] = {"psnr": psnr, "ssim": ssim, "nfe": test.nfe, "wall_time": test.wall_time,
                           "num_samples": int(test.samples.shape[1]), "point_estimate": test.point_estimate,
                           "num_test": int(test.samples.shape[0]), "num_calibration": int(cal.samples.shape[0])}
    arrays: dict[str, np.ndarray] = {}
    out["conformal_all"] = _recalibrate(spec, cal, test, generator)
    after = out["conformal"] = out["conformal_all"]["crc"]
    out["rcps"] = out["conformal_all"]["rcps"]
    if test.point_estimate:
        out["coverage"] = _split_conformal_curve(cal, test, levels)
        out.update(main_coverage=None, main_cp=None, main_case_ci=None, ece=None)
        out["verdict"], out["coverage_class"] = verdict(level, None, None, after)
        return out, arrays
    masks = region_masks(test.truths, test.lesion_masks)
    res = coverage(test.samples, test.truths, levels=levels, masks=masks, generator=generator, method="weibull")
    hpd = coverage(test.samples, test.truths, levels=levels, kind="hpd", generator=generator)
    out["coverage"], out["coverage_hpd"] = _curve(res), _curve(hpd)
    out.update(main_coverage=float(res.empirical[i_main]),
               main_cp=[float(res.cp_low[i_main]), float(res.cp_high[i_main])],
               main_case_ci=[float(res.case_low[i_main]), float(res.case_high[i_main])],
               ece=res.ece, ece_hpd=hpd.ece, main_coverage_hpd=float(hpd.empirical[i_main]))
    out["stratified"] = {name: {"coverage": float(s.empirical[i_main]), "cp_low": float(s.cp_low[i_main]),
                                "cp_high": float(s.cp_high[i_main]), "num_pixels": s.num_pixels}
                         for name, s in res.strata.items() if s.num_pixels > 0}
    arrays["coverage_map"] = res.maps[i_main][0]  # channel 0
    if test.samples.shape[1] >= 2:
        sb = sbc(test.samples, test.truths, mask=test.lesion_masks.numpy(), generator=generator)

        def rank_test(t) -> dict:
            return {"hist": t.counts.tolist(), "expected": t.expected.tolist(), "band_low": t.band_low.tolist(),
                    "band_high": t.band_high.tolist(), "pvalue_ks": t.pvalue_ks, "pvalue_chi2": t.pvalue_chi2,
                    "outside_band": t.outside_band}

        out["sbc"] = rank_test(sb.pixels) | {"summaries": {k: rank_test(v) for k, v in sb.summaries.items()}}
        tp = tarp(test.samples, test.truths, generator=generator)
        out["tarp"] = {"alpha": tp.alpha.tolist(), "ecp": tp.ecp.tolist(), "band_low": tp.band_low.tolist(),
                       "band_high": tp.band_high.tolist(), "max_deviation": tp.max_deviation,
                       "deviation_band": tp.deviation_band, "atc": tp.atc, "pvalue_ks": tp.pvalue_ks}
    out["verdict"], out["coverage_class"] = verdict(level, out["main_coverage"], out["main_case_ci"], after)
    return out, arrays


def _example_arrays(spec: StudySpec, problem, data: dict[str, SplitData], index: int) -> dict[str, np.ndarray]:
    """Images of one test case: truth, a view of the measurement, and per sampler mean, std, width, misses.

    The measurement is shown as ``y`` itself when it is a real image of the truth's shape (deblurring,
    masked inpainting), else as ``A^+ y`` (k-space, pixel lists). Point estimates get only their mean.
    """
    level = 1 - spec.alpha
    first = next(iter(data.values()))
    y, truth = first.ys[index][0], first.truths[index]
    if not y.is_complex() and y.shape == truth.shape:
        view, out = y, {"measurement_kind": np.zeros(())}
    else:
        view, out = problem.operator.pinv(first.ys[index])[0], {"measurement_kind": np.ones(())}
    view = view.real if view.is_complex() else view
    out.update({"truth": truth[0].numpy(), "measurement": view[0].numpy()})
    for label, d in data.items():
        s = d.samples[index].numpy()
        out[f"{label}/mean"] = s.mean(0)[0]
        if d.point_estimate:
            continue
        lo, hi = equal_tailed_intervals(s[None], level, method="weibull")
        t = d.truths[index].numpy()
        out[f"{label}/std"] = s.std(0, ddof=1)[0]
        out[f"{label}/width"] = (hi - lo)[0, 0]
        out[f"{label}/miss"] = ((t < lo[0]) | (t > hi[0]))[0].astype(np.float64)
    return out


def _shown_path(path: Path | None) -> str:
    """``path`` relative to the working directory when it lies below it, else its last two parts."""
    if path is None:
        return ""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*Path(path).parts[-2:]).as_posix()


def _write_json(path: Path, data: dict) -> None:
    store.atomic_write_text(path, json.dumps(data, indent=1, allow_nan=True))


def analyze_study(spec: StudySpec, results: str | os.PathLike | None = None, *, audit: bool | None = None,
                  progress: bool = True, problem=None, num_examples: int = 2, skip_incomplete: bool = False,
                  command: str | None = None) -> dict:
    """Compute every diagnostic of a finished study; write ``analysis.json`` + ``analysis.safetensors``.

    Parameters
    ----------
    spec : the study; results : its results folder (default ``<study folder>/results``).
    audit : run the hallucination audit (default ``spec.audit``).
    problem : the :class:`InverseProblem` (default: built from the spec, as :func:`run_study` does).
    num_examples : test cases shown in the report (the first with a lesion and the first without).
    skip_incomplete : leave out samplers whose results are not all there (listed under ``"incomplete"``)
        instead of raising.
    command : how the study was run, shown in the report (default: ``bayesinv calibrate <spec>``; paths
        relative to the working directory, so that no machine's absolute path lands in a report).

    Returns the analysis dictionary (what ``analysis.json`` holds).
    """
    from bayesinv.studies.audit import audit_sampler, hallucination_verdict

    results = Path(results) if results is not None else spec.folder / "results"
    audit = spec.audit if audit is None else audit
    problem = study_problem(spec) if problem is None else problem
    level = 1 - spec.alpha
    analysis: dict[str, Any] = {
        "version": bayesinv.__version__, "main_level": level, "levels": list(spec.levels),
        "study": {"name": spec.name, "operator": spec.operator, "image_size": spec.image_size,
                  "noise_sigma": spec.noise_sigma, "prior": spec.prior, "num_calibration": spec.num_calibration,
                  "num_test": spec.num_test, "num_ood": spec.num_ood, "family": spec.family,
                  "ood_family": spec.ood_family, "lesion_prob": spec.lesion_prob, "alpha": spec.alpha,
                  "delta": spec.delta, "seed": spec.seed, "spec": _shown_path(spec.path),
                  "command": command or f"bayesinv calibrate {_shown_path(spec.path) or spec.name}",
                  "samplers": {s.label: {"sampler": s.sampler, "num_samples": s.num_samples, "steps": s.steps,
                                         "options": s.options, "max_cases": s.max_cases} for s in spec.samplers}},
        "samplers": {}, "hallucination": {} if audit else None, "examples": [], "incomplete": []}
    arrays: dict[str, np.ndarray] = {}
    tests: dict[str, SplitData] = {}
    bar = tqdm(spec.samplers, desc="analysis", unit="sampler", disable=not progress)
    for s in bar:
        bar.set_postfix_str(s.label)
        generator = torch.Generator().manual_seed(spec.seed)
        try:
            cal, test = (load_split(results, spec, s.label, split, problem) for split in ("calibration", "test"))
            ood = load_split(results, spec, s.label, "ood", problem) if audit and "ood" in splits(spec) else None
        except FileNotFoundError:
            if not skip_incomplete:
                raise
            analysis["incomplete"].append(s.label)
            continue
        tests[s.label] = test
        summary, maps = calibration_summary(spec, cal, test, generator=generator)
        analysis["samplers"][s.label] = summary
        arrays.update({f"{s.label}/{k}": v for k, v in maps.items()})
        if audit:
            hall, hall_maps = audit_sampler(spec, problem, test, ood)
            hall["verdict"] = hallucination_verdict(hall)
            analysis["hallucination"][s.label] = hall
            arrays.update({f"{s.label}/{k}": v for k, v in hall_maps.items()})
    bar.close()
    if not tests:
        raise FileNotFoundError(f"no sampler of study {spec.name!r} has complete results in {results}")
    full = [label for label, d in tests.items() if d.samples.shape[0] == spec.num_test] or list(tests)
    first = tests[full[0]]
    chosen = [int(i) for i in torch.nonzero(first.has_lesion).flatten()[:1]] + \
             [int(i) for i in torch.nonzero(~first.has_lesion).flatten()[:1]]
    chosen = (chosen + [i for i in range(first.samples.shape[0]) if i not in chosen])[:num_examples]
    common = {label: tests[label] for label in full}
    for k, index in enumerate(chosen):
        ex = _example_arrays(spec, problem, common, index)
        analysis["examples"].append({"index": index, "has_lesion": bool(first.has_lesion[index]),
                                     "samplers": list(common)})
        arrays.update({f"ex{k}/{name}": v for name, v in ex.items()})
    if audit:
        from bayesinv.studies.audit import example_hallucination_maps

        for k, index in enumerate(chosen):
            arrays.update({f"ex{k}/{n}": v for n, v in example_hallucination_maps(problem, common, index).items()})
    with study_lock(results):
        _write_json(results / "analysis.json", analysis)
        store.atomic_save_tensors({k: torch.as_tensor(np.ascontiguousarray(v)).float() for k, v in arrays.items()},
                                  results / "analysis.safetensors")
    return analysis
