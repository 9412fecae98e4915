"""A tiny study (8x8 denoising, exact posterior) rendered to an HTML report, shared by the report tests and the
headless-browser test of the integrations lane."""

from __future__ import annotations

from pathlib import Path

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Identity
from bayesinv.report import render_report
from bayesinv.studies import analyze_study, parse_study, resolve_prior, run_study


def tiny_report(folder: Path, name: str) -> tuple[Path, dict]:
    """Run, analyse and render a 6 + 8 + 2 case study in ``folder``; return the report's path and the analysis."""
    doc = {"name": name, "seed": 1, "problem": {"operator": "denoise", "image_size": 8, "noise_sigma": 0.1},
           "prior": {"name": "phantom-gaussian"},
           "data": {"family": "ellipses", "num_calibration": 6, "num_test": 8, "num_ood": 2},
           "samplers": {"exact": {"sampler": "exact", "num_samples": 12},
                        "point": {"sampler": "exact", "num_samples": 1}}}
    spec = parse_study(doc, folder / "study.toml")
    problem = InverseProblem(Identity((1, 8, 8)), Gaussian(0.1), resolve_prior("phantom-gaussian", 8))
    results = run_study(spec, problem=problem, progress=False)
    analysis = analyze_study(spec, results, problem=problem, progress=False)
    return render_report(results), analysis
