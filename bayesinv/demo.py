"""The main job (``bayesinv demo``): posterior sampling, calibration and a hallucination audit on phantom32.

Two small studies on held-out phantoms with the shipped ``phantom32`` diffusion prior — Gaussian deblurring
(std 1.5 px) and 4x Cartesian MRI, both at ``sigma_y = 0.05`` — each with DDRM, TV (a point estimate with
conformal intervals) and one more method (Dirac for deblurring, the unrolled network for MRI). Each study is run (resumable), analysed (coverage, SBC, TARP, conformal
recalibration, hallucination audit) and rendered to its own report; ``<out>/report.html`` is an index page
with every study's verdict table and links to the full reports. Sizes:

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
import torch

from bayesinv.studies.spec import SamplerSpec, StudySpec

__all__ = ["DEMO_SIZES", "demo_studies", "run_demo", "min_norm_figure"]

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
th{background:#eee}</style></head><body>
<h1>bayesinv demo: calibrated posteriors on phantom32</h1>
<h2>The measurements</h2>
<p>A held-out phantom (with a lesion), its simulated measurements and the min-norm reconstruction
<code>A<sup>+</sup>y</code> for deblurring, 50% inpainting and 4x MRI (sigma_y = 0.05).</p>
<img alt="phantom, measurements and min-norm reconstructions" src="data:image/png;base64,{{ measurements }}">
<p>Posterior samples for simulated measurements of held-out phantoms with the shipped <code>phantom32</code>
diffusion prior. Each study below has a full report (coverage curves, maps, SBC, TARP, conformal recalibration,
hallucination audit, example cases).</p>
{% for study in studies %}
<h2>{{ study.title }}</h2>
<p>Full report: <a href="{{ study.link }}">{{ study.link }}</a></p>
<table><tr><th>sampler</th><th>calibration</th><th>hallucination audit</th></tr>
{% for row in study.verdicts %}<tr><td>{{ row[0] }}</td><td>{{ row[1] }}</td><td>{{ row[2] }}</td></tr>{% endfor %}
</table>
{% endfor %}
</body></html>
""", autoescape=True)


def min_norm_figure(seed: int = 0) -> bytes:
    """PNG: a held-out phantom, its measurement and the min-norm reconstruction ``A^+ y`` for deblurring,
    50% inpainting and 4x MRI (``|y|`` in log scale for k-space)."""
    import matplotlib.pyplot as plt

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


def _verdicts(report_json: Path) -> list[tuple[str, str, str]]:
    """``(sampler, calibration verdict, audit verdict)`` rows read from a rendered study's ``report.json``."""
    data = json.loads(report_json.read_text())
    audits = data.get("hallucination") or {}
    return [(label, entry.get("verdict", ""), (audits.get(label) or {}).get("verdict", "–"))
            for label, entry in data.get("samplers", {}).items()]


def run_demo(out: str | os.PathLike = "demo-output", *, seed: int = 0, size: str = "small",
             progress: bool = True) -> Path:
    """Run the demo studies into ``out`` (resumable) and write ``<out>/report.html``; returns its path."""
    from bayesinv.studies.pipeline import calibrate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figure = min_norm_figure(seed)
    (out / "measurements.png").write_bytes(figure)
    studies = []
    for spec, (label, (_, _, title, _)) in zip(demo_studies(size, seed=seed), PROBLEMS.items(), strict=True):
        report = calibrate(spec, out / label / "results", report=out / label / "report.html", audit=True,
                           progress=progress)
        studies.append({"title": title, "link": f"{label}/report.html",
                        "verdicts": _verdicts(report.with_name("report.json"))})
    index = out / "report.html"
    index.write_text(_INDEX.render(studies=studies, measurements=base64.b64encode(figure).decode()))
    return index

