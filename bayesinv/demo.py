"""The main job (``bayesinv demo``): posterior sampling, calibration and a hallucination audit on phantom32.

Two small studies on held-out phantoms with the shipped ``phantom32`` diffusion prior — Gaussian deblurring
(std 1.5 px) and 4x Cartesian MRI, both at ``sigma_y = 0.05`` — each with DDRM, TV (a point estimate with
conformal intervals) and one more method (Dirac for deblurring, the unrolled network for MRI). Each study is run (resumable), analysed (coverage, SBC, TARP, conformal
recalibration, hallucination audit) and rendered to its own report; ``<out>/report.html`` is an index page
with the verdict table (:func:`verdict_rows`: the same table as the README's, which ``bayesinv demo`` also
prints) and links to the full reports. Sizes:

* ``tiny``: 3 + 3 cases, 4 samples per case (a smoke test),
* ``small``: the README's demo (10 calibration + 10 test cases per study, 8 samples per case),
* ``full``: 48 + 48 cases, 32 samples per case.

>>> sorted(DEMO_SIZES)
['full', 'small', 'tiny']
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import jinja2

from bayesinv.studies.spec import SamplerSpec, StudySpec

__all__ = ["DEMO_SIZES", "demo_studies", "run_demo", "min_norm_figure", "verdict_rows", "markdown_table",
           "TABLE_COLUMNS"]

DEMO_SIZES = {
    "tiny": {"cases": 3, "num_samples": 4, "subset": 2},
    "small": {"cases": 10, "num_samples": 8, "subset": 3},
    "full": {"cases": 48, "num_samples": 32, "subset": 16},
}

PROBLEMS = {
    # label -> (operator, options, title, samplers besides DDRM and TV: (label, registry name, on a subset?))
    "deblur": ("deblur", {"std": 1.5}, "Gaussian deblurring, std 1.5 px", [("dirac", "dirac", True)]),
    "mri4x": ("mri", {"acceleration": 4}, "4x Cartesian MRI (single coil)", [("unrolled", "unrolled", False)]),
}
PROBLEM_NAMES = {"deblur": "deblur", "mri4x": "MRI 4x"}
METHOD_NAMES = {"ddrm": "DDRM", "dirac": "Dirac-PO", "tv": "TV", "unrolled": "unrolled"}
TABLE_COLUMNS = ("problem", "method", "PSNR", "90% coverage", "verdict", "after recalibration", "false lesions",
                 "missed lesions")


def demo_studies(size: str = "small", *, seed: int = 0, prior: str = "phantom32") -> list[StudySpec]:
    """The demo's study specs (one per problem) at the given size.

    Every study has DDRM (20 steps; Kawar et al. 2022) and TV with conformal intervals; deblurring adds
    Dirac-PO (on the first ``subset`` cases of each split: it backpropagates through its network), MRI adds
    the unrolled Neumann network. DPS and the Langevin samplers need hundreds of network gradients per
    sample, too many for a demo on two CPU cores; ``calibration/`` holds the studies that compare them.
    """
    if size not in DEMO_SIZES:
        raise ValueError(f"size must be one of {sorted(DEMO_SIZES)}, got {size!r}")
    s = DEMO_SIZES[size]
    specs = []
    for label, (operator, options, _, extra) in PROBLEMS.items():
        samplers = [SamplerSpec("ddrm", "ddrm", s["num_samples"], 20)]
        samplers += [SamplerSpec(name, registry, s["num_samples"] if registry != "unrolled" else 1,
                                 max_cases=s["subset"] if subset else None) for name, registry, subset in extra]
        samplers.append(SamplerSpec("tv", "tv", 1))
        specs.append(StudySpec(name=f"demo-{label}", seed=seed, operator=operator, image_size=32, noise_sigma=0.05,
                               operator_options=dict(options), prior=prior, samplers=tuple(samplers),
                               num_calibration=s["cases"], num_test=s["cases"], lesion_prob=0.5))
    return specs


_INDEX = jinja2.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bayesinv demo report</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left}
th{background:#eee}.ok{color:#1a7f37}.bad{color:#b42318}.warn{color:#9a6700}</style></head><body>
<h1>bayesinv demo: calibrated posteriors on phantom32</h1>
<h2>The measurements</h2>
<p>A held-out phantom (with a lesion), its simulated measurements and the min-norm reconstruction
<code>A<sup>+</sup>y</code> for deblurring, 50% inpainting and 4x MRI (sigma_y = 0.05).</p>
<img alt="phantom, measurements and min-norm reconstructions" src="data:image/png;base64,{{ measurements }}">
<p>Posterior samples for simulated measurements of held-out phantoms with the shipped <code>phantom32</code>
diffusion prior. Each study below has a full report (coverage curves, maps, SBC, TARP, conformal recalibration,
hallucination audit, example cases).</p>
<h2>Verdicts</h2>
<p>90% equal-tailed intervals; coverage over test pixels with a 95% interval over cases; verdict: over-confident
when that interval lies below 90%, under-confident when above, too few cases to tell when it contains 90% but is
wider than 10 points; "after recalibration": conformal risk control learned on the calibration split; lesions:
false = lesion-free cases shown with a lesion, missed = lesion cases shown without (a detector on the samples).
Full reports: {% for study in studies %}<a href="{{ study.link }}">{{ study.title }}</a>{% if not loop.last %},
{% endif %}{% endfor %}.</p>
<table id="verdicts"><tr>{% for name in columns %}<th>{{ name }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for name in columns %}
<td{% if name == "verdict" %} class="{{ row.css }}"{% endif %}>{{ row[name] }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% for study in studies %}
<h2>{{ study.title }}</h2>
<p>Full report: <a href="{{ study.link }}">{{ study.link }}</a></p>
<table><tr><th>sampler</th><th>calibration</th><th>hallucination audit</th></tr>
{% for row in study.verdicts %}<tr><td>{{ row[0] }}</td><td class="{{ row[3] }}">{{ row[1] }}</td>
<td>{{ row[2] }}</td></tr>{% endfor %}
</table>
{% endfor %}
</body></html>
""", autoescape=True)


def min_norm_figure(seed: int = 0) -> bytes:
    """PNG: a held-out phantom, its measurement and the min-norm reconstruction ``A^+ y`` for deblurring,
    50% inpainting and 4x MRI (``|y|`` in log scale for k-space)."""
    import matplotlib.pyplot as plt
    import torch

    from bayesinv import Gaussian, InverseProblem
    from bayesinv.data import phantom_dataset
    from bayesinv.operators import make_operator
    from bayesinv.report.figures import to_png

    batch = phantom_dataset("test", 8, 32, seed=seed, lesion_prob=1.0)
    truth = batch.images[:1].double()
    rows = [("deblur", {"std": 1.5}), ("inpaint", {"fraction_missing": 0.5}), ("mri", {"acceleration": 4})]
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.3 * len(rows)))
    for k, (name, options) in enumerate(rows):
        problem = InverseProblem(make_operator(name, (1, 32, 32), seed=seed, **options), Gaussian(0.05))
        y = problem.simulate(truth, generator=torch.Generator().manual_seed(seed))
        shown = y[0, 0].abs().add(1e-3).log10() if y.is_complex() else y[0, 0]
        panels = [("phantom", truth[0, 0]), (f"{name}: y" + (" (log10 |k|)" if y.is_complex() else ""), shown),
                  ("min-norm A⁺y", problem.operator.pinv(y)[0, 0].real)]
        for ax, (title, image) in zip(axes[k], panels):
            ax.imshow(image.numpy(), cmap="gray")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return to_png(fig)


def _verdicts(report_json: Path) -> list[tuple[str, str, str, str]]:
    """``(sampler, calibration verdict, audit verdict, css class)`` rows read from a rendered study's
    ``report.json``."""
    data = json.loads(report_json.read_text())
    audits = data.get("hallucination") or {}
    return [(label, entry.get("verdict", ""), (audits.get(label) or {}).get("verdict", "–"),
             entry.get("coverage_class", ""))
            for label, entry in data.get("samplers", {}).items()]


def _status_word(verdict_text: str) -> str:
    """The verdict's conclusion: the words after the dash (``'over-confident'``), or ``'point estimate'``."""
    head = verdict_text.split(";")[0]
    return head.split(" — ")[-1] if " — " in head else head.split(":")[0]


def verdict_rows(studies: dict[str, Path]) -> list[dict[str, str]]:
    """The demo's verdict table, one row per (problem, method), from each study's ``report.json``.

    ``studies`` maps a problem label of :data:`PROBLEMS` to its ``report.json``. Columns are
    :data:`TABLE_COLUMNS` (strings as printed) plus ``css`` (the verdict's colour class).
    """
    rows = []
    for label, path in studies.items():
        data = json.loads(Path(path).read_text())
        hall = data.get("hallucination") or {}
        for name, s in data["samplers"].items():
            cases = data["study"]["num_test"]
            method = METHOD_NAMES.get(name, name) + (f" ({s['num_test']} cases)" if s["num_test"] < cases else "")
            crc = s.get("conformal") or {}
            if crc.get("controlled"):
                after = f"{100 * crc['coverage_after']:.1f}%"
            else:
                after = "too few cases" if crc else "–"
            lesion = (hall.get(name) or {}).get("lesion")
            coverage = "–" if s.get("main_coverage") is None else (
                f"{100 * s['main_coverage']:.1f}% [{100 * s['main_case_ci'][0]:.1f}, {100 * s['main_case_ci'][1]:.1f}]")
            rows.append({"problem": PROBLEM_NAMES.get(label, label), "method": method, "PSNR": f"{s['psnr']:.1f}",
                         "90% coverage": coverage, "verdict": _status_word(s.get("verdict", "")),
                         "after recalibration": after,
                         "false lesions": f"{lesion['false_lesions']}/{lesion['num_lesion_free']}" if lesion else "–",
                         "missed lesions": f"{lesion['missed_lesions']}/{lesion['num_lesion']}" if lesion else "–",
                         "css": s.get("coverage_class", "")})
    return rows


def markdown_table(rows: list[dict[str, str]]) -> str:
    """``rows`` of :func:`verdict_rows` as the README's Markdown table (what ``bayesinv demo`` prints)."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in TABLE_COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def run_demo(out: str | os.PathLike = "demo-output", *, seed: int = 0, size: str = "small",
             progress: bool = True, command: str | None = None, device: str | None = None) -> Path:
    """Run the demo studies into ``out`` (resumable) and write ``<out>/report.html`` (the index, with the
    verdict table) and ``<out>/verdicts.md`` (the same table in Markdown); returns the index's path.

    ``command`` is shown in the reports' "Generated by" line (default: this call). ``device``: where the
    samplers run (e.g. ``"cuda"``; the prior, the operators and the Dirac and unrolled networks move there);
    results, analysis and reports are the same files, computed from the CPU copies.
    """
    if device is not None:  # refused before anything is written
        from bayesinv._validation import check_device

        check_device(device)
    import sys

    from bayesinv.studies.pipeline import calibrate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = command or f"run_demo({out.name!r}, seed={seed}, size={size!r})"
    if progress:
        print("demo: drawing a phantom and its measurements for the index figure ...", file=sys.stderr, flush=True)
    figure = min_norm_figure(seed)
    (out / "measurements.png").write_bytes(figure)
    studies, jsons = [], {}
    for spec, (label, (_, _, title, _)) in zip(demo_studies(size, seed=seed), PROBLEMS.items(), strict=True):
        report = calibrate(spec, out / label, audit=True, progress=progress, command=command, device=device)
        jsons[label] = report.with_name("report.json")
        studies.append({"title": title, "link": f"{label}/report.html", "verdicts": _verdicts(jsons[label])})
    rows = verdict_rows(jsons)
    (out / "verdicts.md").write_text(markdown_table(rows) + "\n")
    index = out / "report.html"
    index.write_text(_INDEX.render(studies=studies, rows=rows, columns=TABLE_COLUMNS,
                                   measurements=base64.b64encode(figure).decode()))
    return index

