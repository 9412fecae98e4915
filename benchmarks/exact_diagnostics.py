"""The library's own diagnostics on the exact 32x32 lesion-mixture testbed: do they pass exact draws and flag
the samplers that the exact comparison (benchmarks/exact_images.py) shows to be wrong?

Cases are those of ``exact_images.py`` (truths drawn from the prior, so SBC applies). Per problem and draw
set, with ``S`` draws per case:

* ``exact``: exact posterior draws (must pass everything);
* ``exact x0.8``: exact draws shrunk towards the posterior mean by 0.8 (a synthetic over-confident sampler:
  its 90% intervals cover about 80%);
* ``ddrm``: the registry's DDRM with its defaults (the exact comparison: 77-83% pooled coverage).

Coverage uses numpy's ``weibull`` sample quantiles (expected coverage 0.9 for exact draws; the default
``linear`` rule has expected coverage ``0.9 (S - 1) / (S + 1)``, 85.5% at ``S = 39``). The RCPS scale is computed
from :func:`~bayesinv.diagnostics.conformal.sample_bounds` (``linear`` quantiles, and a high-probability bound
over 40 cases), so it exceeds 1 even for exact draws: read it against the ``exact`` row.

Diagnostics (``bayesinv.diagnostics``): pooled 90% equal-tailed coverage with its case t-interval
(``coverage``), SBC's pixel rank-uniformity chi-squared p-value (``sbc``), TARP's KS p-value and max
|ECP - alpha| (``tarp``), the lesion audit's ECE and AUC of P(lesion|y) = mean over draws of the exact
p(lesion | x) (``lesion_audit``), and the RCPS scale lambda needed for 90% pixel coverage w.p. 0.9
(``rcps_calibrate``; larger = the intervals had to be widened more).

    OMP_NUM_THREADS=1 python benchmarks/exact_diagnostics.py --cases 40 --draws 39
    # -> benchmarks/results/exact_diagnostics.json and the markdown table on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from exact_images import make_case, make_prior, make_problems  # noqa: E402

from bayesinv.diagnostics import coverage  # noqa: E402
from bayesinv.diagnostics.conformal import rcps_calibrate, sample_bounds  # noqa: E402
from bayesinv.diagnostics.hallucination import lesion_audit  # noqa: E402
from bayesinv.diagnostics.sbc import sbc  # noqa: E402
from bayesinv.diagnostics.tarp import tarp  # noqa: E402
from bayesinv.priors import LesionPosteriorSolver  # noqa: E402
from bayesinv.samplers import SAMPLERS  # noqa: E402

OUT = Path(__file__).parent / "results" / "exact_diagnostics.json"


def draw_sets(prior, problem, name, cases, draws):
    solver = LesionPosteriorSolver(problem)
    sets = {"exact": [], "exact x0.8": [], "ddrm": []}
    truths, labels, seconds = [], [], {"ddrm": 0.0}
    for index in range(cases):
        truth, comp, _, y = make_case(prior, problem, name, index)
        post = solver.posterior(y)
        exact = post.sample(draws, generator=torch.Generator().manual_seed(3 + index))
        sets["exact"].append(exact)
        shrunk = post.sample(draws, generator=torch.Generator().manual_seed(50_000 + index))
        sets["exact x0.8"].append(post.mean + 0.8 * (shrunk - post.mean))
        start = time.perf_counter()
        res = SAMPLERS["ddrm"](problem, y, num_samples=draws, progress=False,
                                generator=torch.Generator().manual_seed(5 + index))
        seconds["ddrm"] += time.perf_counter() - start
        sets["ddrm"].append(res.samples.reshape(draws, *prior.event_shape).double())
        truths.append(truth[None])
        labels.append(comp > 0)
    return {k: torch.stack(v) for k, v in sets.items()}, torch.stack(truths), torch.tensor(labels)


def diagnose(prior, samples, truths, labels) -> dict:
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    cov = coverage(samples, truths, levels=[0.9], generator=g(), method="weibull")
    s = sbc(samples, truths, generator=g())
    t = tarp(samples, truths, generator=g())
    n, k = samples.shape[:2]
    p_hat = prior.lesion_probability(samples.reshape(n * k, *prior.event_shape)).reshape(n, k).mean(1)
    audit = lesion_audit(p_hat, labels)
    centre, lo, hi = sample_bounds(samples.numpy(), level=0.9)
    rc = rcps_calibrate(centre, lo, hi, truths.numpy(), alpha=0.1, delta=0.1, generator=g())
    return {"cover90": float(cov.empirical[0]), "cover90_ci": [float(cov.case_low[0]), float(cov.case_high[0])],
            "sbc_p_chi2": float(s.pixels.pvalue_chi2), "tarp_p_ks": float(t.pvalue_ks),
            "tarp_max_dev": float(t.max_deviation), "tarp_band": float(t.deviation_band),
            "lesion_ece": float(audit.ece), "lesion_auc": float(audit.auc), "rcps_lambda": float(np.ravel(rc.lam)[0]),
            "cases": int(n), "draws": int(k)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--draws", type=int, default=39)
    parser.add_argument("--problems", nargs="+", default=["deblur", "inpaint", "mri"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = make_prior()
    problems = make_problems(prior)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args.problems:
        sets, truths, labels = draw_sets(prior, problems[name], name, args.cases, args.draws)
        results[name] = {label: diagnose(prior, s, truths, labels) for label, s in sets.items()}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=1))
        print(f"{name} done", flush=True)
    print("| problem | draws | cover 90% [case CI] | SBC p (pixels) | TARP KS p | TARP max dev (band) | lesion ECE "
          "| lesion AUC | RCPS lambda |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        for label, r in rows.items():
            print(f"| {name} | {label} | {100 * r['cover90']:.1f} [{100 * r['cover90_ci'][0]:.1f}, "
                  f"{100 * r['cover90_ci'][1]:.1f}] | {r['sbc_p_chi2']:.2g} | {r['tarp_p_ks']:.2g} "
                  f"| {r['tarp_max_dev']:.3f} ({r['tarp_band']:.3f}) | {r['lesion_ece']:.3f} | {r['lesion_auc']:.3f} "
                  f"| {r['rcps_lambda']:.2f} |")


if __name__ == "__main__":
    main()
