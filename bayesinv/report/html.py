"""Render an analysis (``analysis.json`` + ``analysis.safetensors`` from :mod:`bayesinv.studies.analysis`)
to a self-contained HTML page (figures embedded as base64 PNG; no network) and a JSON file.

This module renders only; every number comes from the analysis.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import jinja2
from safetensors.torch import load_file

from bayesinv.report import figures

__all__ = ["render_report"]


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def render_report(results: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Render ``<results>/analysis.json`` to ``out`` (default ``<results>/../report.html``) and copy the JSON
    next to it as ``report.json``. Returns the HTML path."""
    results = Path(results)
    analysis_path = results / "analysis.json"
    if not analysis_path.exists():
        raise FileNotFoundError(f"no analysis in {results}: run `bayesinv calibrate` on the study first")
    analysis = json.loads(analysis_path.read_text())
    arrays = load_file(str(results / "analysis.safetensors")) if (results / "analysis.safetensors").exists() else {}
    samplers = analysis["samplers"]
    level = analysis["main_level"]
    figs = [
        {"title": "Coverage curves", "caption": "Empirical vs nominal coverage of equal-tailed intervals; shaded: "
         "Clopper–Pearson 95% band (cases as units). Below the diagonal = over-confident.",
         "data": _b64(figures.coverage_figure(samplers))},
    ]
    if any(s.get("stratified") for s in samplers.values()):
        figs.append({"title": "Lesion vs background", "caption": "Coverage of the main-level intervals on lesion "
                     "pixels and on background pixels, with Clopper–Pearson intervals.",
                     "data": _b64(figures.stratified_figure(samplers, str(level)))})
    if any(s.get("sbc") for s in samplers.values()):
        figs.append({"title": "Simulation-based calibration", "caption": "Ranks of the true pixel values among the "
                     "posterior samples; uniform if calibrated (grey: simultaneous 95% band).",
                     "data": _b64(figures.sbc_figure(samplers))})
    if any(s.get("tarp") for s in samplers.values()):
        figs.append({"title": "TARP", "caption": "Joint coverage of whole images (Lemos et al. 2023); the diagonal "
                     "is calibrated.", "data": _b64(figures.tarp_figure(samplers))})
    for i, example in enumerate(analysis.get("examples", [])):
        ex = {"truth": arrays[f"ex{i}/truth"].numpy(), "measurement": arrays[f"ex{i}/measurement"].numpy(),
              "samplers": {}}
        for label in example["samplers"]:
            ex["samplers"][label] = {k: arrays[f"ex{i}/{label}/{k}"].numpy() for k in ("mean", "std", "width", "miss")}
        figs.append({"title": f"Example test case {example['index']}", "caption": "Truth, measurement, and per sampler "
                     "the posterior mean, standard deviation, width of the 90% interval and pixels it misses.",
                     "data": _b64(figures.examples_figure(ex))})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True)
    html = env.get_template("template.html.j2").render(
        study=analysis["study"], samplers=samplers, figures=figs, hallucination=analysis.get("hallucination"),
        main_level_pct=f"{100 * level:.0f}%", version=analysis.get("version", ""))
    out = Path(out) if out is not None else results.parent / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html)
    os.replace(tmp, out)
    out.with_name(out.stem + ".json").write_text(json.dumps(analysis, indent=2))
    return out
