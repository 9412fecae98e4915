"""Render an analysis (``analysis.json`` + ``analysis.safetensors`` from :mod:`bayesinv.studies.analysis`)
to a self-contained HTML page (figures embedded as base64 PNG; no network) and a JSON file.

This module renders only; every number comes from the analysis.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from pathlib import Path

import jinja2
from safetensors.torch import load_file

from bayesinv.report import figures

__all__ = ["render_report"]


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _pct(value, digits: int = 1) -> str:
    """``0.903 -> '90.3%'``; None/NaN -> an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}%"


def _interval(pair, digits: int = 1) -> str:
    if not pair or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in pair):
        return "–"
    return f"[{100 * pair[0]:.{digits}f}, {100 * pair[1]:.{digits}f}]"


def _num(value, fmt: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def _example(arrays: dict, i: int, labels: list[str]) -> dict:
    kind = f"ex{i}/measurement_kind"
    ex = {"truth": arrays[f"ex{i}/truth"].numpy(), "measurement": arrays[f"ex{i}/measurement"].numpy(), "samplers": {},
          "measurement_title": "measurement A⁺y" if kind in arrays and float(arrays[kind]) else "measurement y"}
    for label in labels:
        keys = ("mean", "std", "width", "miss", "null", "z")
        ex["samplers"][label] = {k: arrays[f"ex{i}/{label}/{k}"].numpy() for k in keys
                                 if f"ex{i}/{label}/{k}" in arrays}
    return ex


def _names(mapping) -> str:
    return ", ".join(str(k) for k in mapping)


def _relative(path: str, folder: Path) -> str:
    """``path`` relative to the report's folder (a rendered page never shows this machine's absolute paths)."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).name


def _status(verdict: str, css: str) -> str:
    """The verdict's status words (``over-confident`` ...) so that no cell is judged by its colour alone."""
    if "— " in verdict:
        return verdict.split("— ", 1)[1].split(";", 1)[0].split(" (", 1)[0]
    return {"ok": "calibrated", "bad": "over-confident"}.get(css, "no intervals of its own")


def _calibration_figures(analysis: dict, arrays: dict) -> list[dict]:
    samplers, level = analysis["samplers"], analysis["main_level"]
    names = _names(samplers)
    figs = [{"title": "Coverage curves", "data": figures.coverage_figure(samplers),
             "alt": f"Line plot of empirical against nominal coverage, one line per sampler ({names}), with shaded "
                    "Clopper–Pearson bands and the dashed diagonal of perfect calibration.",
             "caption": "Empirical vs nominal coverage of equal-tailed credible intervals on the test split; shaded: "
                        "Clopper–Pearson 95% band over pooled pixels (too narrow when pixel errors are correlated). "
                        "Below the diagonal = over-confident. Dotted: point estimates with split-conformal intervals."}]
    maps = {k.split("/")[0]: arrays[k].numpy() for k in arrays if k.endswith("/coverage_map")}
    if maps:
        figs.append({"title": "Coverage maps", "data": figures.coverage_maps_figure(maps, level),
                     "alt": f"One {level:.0%}-interval coverage map per sampler ({_names(maps)}): each pixel coloured "
                            "by the fraction of test cases whose interval covered the truth, red below and blue above "
                            "nominal, with a colour bar per map.",
                     "caption": f"Per-pixel coverage of the {level:.0%} intervals over the test cases (blue: covered "
                                "more often than nominal, red: less)."})
    if any(s.get("stratified") for s in samplers.values()):
        figs.append({"title": "Lesion vs background", "data": figures.stratified_figure(samplers, level),
                     "alt": f"Grouped bar chart of {level:.0%}-interval coverage on lesion, edge and background pixels "
                            "per sampler, with error bars and a dashed line at the nominal level.",
                     "caption": f"Coverage of the {level:.0%} intervals on lesion pixels, edge pixels (strong gradient "
                                "of the truth) and the remaining background, with Clopper–Pearson intervals."})
    if any(s.get("sbc") for s in samplers.values()):
        figs.append({"title": "Simulation-based calibration", "data": figures.sbc_figure(samplers),
                     "alt": "Histograms of the rank of each true pixel among its posterior samples, one per sampler, "
                            "over a grey band of the counts expected from uniform ranks.",
                     "caption": "Ranks of the true pixel values among the posterior samples (Talts et al. 2018); "
                                "uniform "
                                "if calibrated (grey: simultaneous 99% band). Titles: KS p-values of the pooled pixel "
                                "ranks and of the scalar summaries (mean intensity, lesion contrast, random "
                                "projection)."})
    if any(s.get("tarp") for s in samplers.values()):
        figs.append({"title": "TARP", "data": figures.tarp_figure(samplers),
                     "alt": "Line plot of TARP expected coverage against credibility level per sampler, with "
                            "bootstrap bands and the dashed diagonal of calibration.",
                     "caption": "Expected coverage of random-centred balls around whole images (Lemos et al. "
                                "2023) with "
                                "a bootstrap band; the diagonal is calibrated."})
    return figs


def _hallucination_figures(hall: dict) -> list[dict]:
    figs = [{"title": "Data consistency", "data": figures.pvalue_figure(hall),
             "alt": f"Histograms of the chi-squared data-consistency p-values of the posterior samples, one per "
                    f"sampler ({_names(hall)}), with a dashed line at the flat height expected for exact draws.",
             "caption": "p-values of ||y − A x||²/σ² against χ² for every posterior sample; flat (dashed "
                        "line) for "
                        "exact posterior draws, piled near 1 for over-smooth fits, near 0 for inconsistent samples."}]
    if any(h.get("lesion") for h in hall.values()):
        figs.append({"title": "Lesion audit: ROC and reliability", "data": figures.lesion_figure(hall),
                     "alt": "Left: ROC curves of the posterior lesion probability per sampler. Right: reliability "
                            "diagram of predicted lesion probability against observed lesion frequency.",
                     "caption": "P(lesion at the audited location | y) = fraction of posterior samples whose local "
                                "contrast exceeds the threshold. Left: ROC against the truth. Right: reliability "
                                "diagram (a calibrated probability lies on the diagonal)."})
        figs.append({"title": "False and missed lesions", "data": figures.false_lesion_figure(hall),
                     "alt": "Bar chart of false-lesion and missed-lesion rates per sampler with Clopper–Pearson "
                            "error bars.",
                     "caption": "Fraction of lesion-free cases where the sampler shows a lesion (P > 1/2), and "
                                "of lesion "
                                "cases where it does not, with Clopper–Pearson 95% intervals."})
    return figs


_FIGURE = re.compile(r'<h([23])>([^<]*)</h\1>(?:(?!<h[1-6]).)*?<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                     re.DOTALL)


def _embedded_figures(page: Path) -> dict[str, str]:
    """``{title: base64 PNG}`` of the figures embedded in an existing report page (empty if there is none)."""
    if not page.exists():
        return {}
    return {html.unescape(title): data for _, title, data in _FIGURE.findall(page.read_text())}


def _locate(source: Path) -> tuple[Path, Path | None, Path]:
    """``(analysis JSON, arrays file or None, default HTML path)`` for a results folder (``analysis.json``),
    a study folder (``results/analysis.json``, else its committed ``report.json``) or a ``report.json``."""
    if source.is_file() and source.suffix == ".json":
        found = source
    else:
        candidates = [source / "analysis.json", source / "results" / "analysis.json", source / "report.json"]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise FileNotFoundError(f"no analysis in {source} (neither analysis.json, results/analysis.json nor "
                                    "report.json): run `bayesinv calibrate` on the study first")
    if found.name == "analysis.json":
        arrays = found.with_name("analysis.safetensors")
        return found, arrays if arrays.exists() else None, found.parent.parent / "report.html"
    arrays = found.with_name(found.stem + ".safetensors")
    return found, arrays if arrays.exists() else None, found.with_name(found.stem + ".html")


def _refresh_verdicts(analysis: dict) -> None:
    """Re-derive each sampler's verdict words and colour from its numbers with the current wording rules
    (:func:`bayesinv.studies.analysis.verdict`), so a re-rendered older analysis reads like a new one."""
    from bayesinv.studies.analysis import verdict

    for s in analysis["samplers"].values():
        if "conformal" in s and "main_coverage" in s:
            s["verdict"], s["coverage_class"] = verdict(analysis["main_level"], s["main_coverage"],
                                                        s["main_case_ci"], s["conformal"])


def render_report(results: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Render an analysis to ``out`` and write its JSON (and arrays) next to it. Returns the HTML path.

    ``results`` is a study's results folder (``analysis.json`` + ``analysis.safetensors``; default ``out``:
    ``<results>/../report.html``), a study folder, or a rendered ``report.json`` (default ``out``: the
    ``report.html`` next to it). A committed study re-renders from its ``report.json`` without sampling:
    figures that need the arrays (coverage maps, example cases) come from ``report.safetensors`` when it
    is there, else they are carried over from the page rendered from the same JSON (or from ``out``), else
    left out with a note.

    Every ``<img>`` is an inline ``data:image/png;base64`` URI with an ``alt`` text saying what the figure
    shows, so the page needs no network; paths (the study spec) are written relative to the page's
    folder, in the HTML and in ``report.json``; tables have a ``<caption>`` and ``scope`` on header cells;
    every coloured verdict also says it in words.
    """
    analysis_path, arrays_path, default_out = _locate(Path(results))
    out = Path(out) if out is not None else default_out
    analysis = json.loads(analysis_path.read_text())
    _refresh_verdicts(analysis)
    study = analysis["study"]
    if "spec" in study:
        study["spec"] = _relative(study["spec"], out.parent.resolve())
    study.setdefault("command", f"bayesinv calibrate {study.get('spec') or study['name']}")
    arrays = load_file(str(arrays_path)) if arrays_path is not None else {}
    kept = {} if arrays else (_embedded_figures(default_out) or _embedded_figures(out))
    figs = _calibration_figures(analysis, arrays)
    if not arrays and "Coverage maps" in kept:
        figs.insert(1, {"title": "Coverage maps", "data": base64.b64decode(kept["Coverage maps"]),
                        "alt": "Per-sampler maps of how often each pixel's interval covered the truth over the test "
                               "cases, with a colour bar from 0 to 1.",
                        "caption": f"Per-pixel coverage of the {analysis['main_level']:.0%} intervals over the test "
                                   "cases (blue: covered more often than nominal, red: less)."})
    examples, missing = [], []
    for i, example in enumerate(analysis.get("examples", [])):
        lesion = "with a lesion" if example.get("has_lesion") else "without a lesion"
        title = f"Example test case {example['index']} ({lesion})"
        if arrays:
            data = figures.examples_figure(_example(arrays, i, example["samplers"]))
        elif title in kept:
            data = base64.b64decode(kept[title])
        else:
            missing.append(title)
            continue
        examples.append({"title": title, "data": data,
                         "alt": f"Image grid for test case {example['index']}: the true image and the measurement, "
                                f"then per sampler ({', '.join(example['samplers'])}) the posterior mean, standard "
                                "deviation, interval width and the pixels the interval misses.",
                         "caption": "Truth, measurement, and per sampler the posterior mean, standard deviation, width "
                                    f"of the {analysis['main_level']:.0%} interval, pixels it misses, and (audit) the "
                                    "null-space part of the mean's error and the z-map (mean − truth)/std."})
    if not arrays and not any(f["title"] == "Coverage maps" for f in figs):
        missing.insert(0, "Coverage maps")
    hall = analysis.get("hallucination") or None
    hall_figs = _hallucination_figures(hall) if hall else []
    for fig in figs + examples + hall_figs:
        fig["data"] = _b64(fig["data"])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(pct=_pct, interval=_interval, num=_num)
    env.globals["status"] = _status
    page = env.get_template("template.html.j2").render(
        study=study, samplers=analysis["samplers"], figures=figs, examples=examples,
        hallucination=hall, hallucination_figures=hall_figs, main_level=analysis["main_level"],
        incomplete=analysis.get("incomplete", []), missing_figures=missing, version=analysis.get("version", ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, page.encode())
    _atomic_write(out.with_name(out.stem + ".json"), json.dumps(analysis, indent=1).encode())
    if arrays_path is not None and arrays_path != out.with_name(out.stem + ".safetensors"):
        _atomic_write(out.with_name(out.stem + ".safetensors"), arrays_path.read_bytes())
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
