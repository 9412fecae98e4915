"""Seconds from one measurement to a recalibrated 90% interval map, with its held-out coverage and PSNR.

The headline benchmark of issue 19. Problem: a 32x32 phantom (``phantom_dataset``), Gaussian deblurring
(std 1.5 px, circular) with sigma_y = 0.05 (``--problem inpaint``: 50% random inpainting). For each method:

* **time** = seconds from the measurement ``y`` to the recalibrated map: drawing 64 posterior samples, their
  equal-tailed 90% interval and mean per pixel (:func:`bayesinv.diagnostics.conformal.sample_bounds`), and the
  recalibration learned beforehand applied (:func:`~bayesinv.diagnostics.conformal.interval_family`). Point-estimate
  baselines (TV, the unrolled network, Dirac-DO) take one reconstruction instead of 64 draws;
* **recalibration** = one scalar ``lambda`` for the interval ``[m - lambda (m - l), m + lambda (u - m)]`` (point
  estimates: ``x_hat -/+ lambda``), learned on the ``calibration`` split and applied to the disjoint ``test`` split
  (``phantom_dataset``'s seed streams), two ways (:func:`summarise`): split conformal with the calibration pixels
  pooled (the 90% quantile of :func:`~bayesinv.diagnostics.conformal.needed_scale`), and conformal risk control
  (``rcps_calibrate(..., groups="scalar", method="crc")``, Angelopoulos et al. 2024), whose guarantee costs
  coverage above 92% with fewer than 45 calibration cases;
* **coverage** = the fraction of held-out pixels inside their recalibrated interval, averaged over held-out cases,
  with a 95% case-bootstrap interval (cases resampled with replacement); **PSNR** of the posterior mean (or point
  estimate) on the held-out cases (data range 1).

Expensive samplers run their calibration and held-out cases with fewer draws than 64 (``DRAWS``: their interval
is then the 90% interval of fewer draws, and the recalibration is learned and checked at that draw count); their
time is measured separately at 64 draws (``time``). The time printed is the fastest of the ``time`` runs (the one least
disturbed by other jobs on the machine), next to the cost of one forward pass of the network at batch 64 measured
just before and after it; without ``time`` runs, the median over the held-out cases run at 64 draws.

Outputs are resumable: one JSON per method and case under ``benchmarks/results/time_to_calibrated_map/<problem>/``
(a case already there is skipped), so an interrupted run continues where it stopped. They hold the case's interval
maps (about 85 kB each) and are not committed; ``table`` writes the committed ``summary_<problem>.json``::

    python benchmarks/time_to_calibrated_map.py run --methods ddrm-20 tv --cal 16 --test 16
    python benchmarks/time_to_calibrated_map.py time --methods dps-50 --repeats 1
    python benchmarks/time_to_calibrated_map.py table       # the README table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

from bayesinv import Gaussian, InverseProblem
from bayesinv.data import phantom_dataset
from bayesinv.diagnostics import conformal
from bayesinv.errors import SamplerDivergence
from bayesinv.operators import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import (sample_annealed_langevin, sample_ddrm, sample_dirac, sample_dps, sample_smc,
                               sample_split_gibbs)
from bayesinv.samplers.baselines import tv, unrolled

RESULTS = Path(__file__).resolve().parent / "results" / "time_to_calibrated_map"
LEVEL = 0.9
MAP_DRAWS = 64
PROBLEMS = {"deblur": ("deblur", {"std": 1.5}, "dirac-blur32"),
            "inpaint": ("inpaint", {"fraction_missing": 0.5}, "dirac-inpaint32")}

# name -> (label, draws per calibration/held-out case, function(problem, y, num_samples, generator, shipped dirac))
METHODS = {
    "ddrm-20": ("DDRM, 20 steps", 64,
                lambda p, y, n, g, d: sample_ddrm(p, y, num_samples=n, steps=20, generator=g, progress=False)),
    "ddrm-10": ("DDRM, 10 steps", 64,
                lambda p, y, n, g, d: sample_ddrm(p, y, num_samples=n, steps=10, generator=g, progress=False)),
    "dirac-po": ("Dirac-PO (shipped network)", 16,
                 lambda p, y, n, g, d: sample_dirac(p, y, num_samples=n, model=d, variant="po", generator=g,
                                                    progress=False)),
    "dps-50": ("DPS, 50 steps", 16,
               lambda p, y, n, g, d: sample_dps(p, y, num_samples=n, steps=50, generator=g, progress=False)),
    "langevin-10x10": ("annealed Langevin, 10 levels x 10 steps", 16,
                       lambda p, y, n, g, d: sample_annealed_langevin(p, y, num_samples=n, steps=10, steps_per_level=10,
                                                                      noise_levels=(20.0, 0.01), generator=g,
                                                                      progress=False)),
    "smc-25": ("twisted SMC, 25 steps, 8 particles per draw", 8,
               lambda p, y, n, g, d: sample_smc(p, y, num_samples=n, steps=25, num_particles=8, generator=g,
                                                progress=False)),
    "split-gibbs": ("split Gibbs (defaults)", 8,
                    lambda p, y, n, g, d: sample_split_gibbs(p, y, num_samples=n, generator=g)),
    # point estimates: an interval x_hat -/+ lambda from conformal risk control, no draws
    "dirac-do": ("Dirac-DO (shipped network, point estimate)", 1,
                 lambda p, y, n, g, d: sample_dirac(p, y, num_samples=1, model=d, variant="do", generator=g,
                                                    progress=False)),
    "unrolled": ("unrolled Neumann network (point estimate)", 1, lambda p, y, n, g, d: unrolled(p, y)),
    "tv": ("TV, FISTA (point estimate)", 1, lambda p, y, n, g, d: tv(p, y)),
}
POINT = {"dirac-do", "unrolled", "tv"}


def build_problem(name: str, prior) -> InverseProblem:
    operator, options, _ = PROBLEMS[name]
    return InverseProblem(make_operator(operator, (1, 32, 32), seed=0, **options), Gaussian(0.05), prior)


def measurement(problem: InverseProblem, split: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(truth (1, 1, 32, 32) float64, y float32)`` of case ``index`` of ``split`` (noise seeded by split and case)."""
    truth = phantom_dataset(split, index + 1, 32, seed=0).images[index:index + 1].double()
    offset = {"calibration": 20_000, "test": 30_000}[split]
    y = problem.simulate(truth, generator=torch.Generator().manual_seed(offset + index))
    return truth, y.to(torch.complex64 if y.is_complex() else torch.float32)


def interval_map(method: str, problem: InverseProblem, y: torch.Tensor, draws: int, seed: int, dirac: str,
                 lam: float = 1.0) -> tuple[dict, float, float]:
    """Sample, summarise and apply ``lam``: ``(arrays, seconds to the map, sampler wall time)``."""
    start = time.perf_counter()
    post = METHODS[method][2](problem, y, draws, torch.Generator().manual_seed(seed), dirac)
    samples = post.samples.reshape(1, -1, 32, 32).double().numpy()  # (1 case, draws, H, W)
    if method in POINT:
        center, lower, upper = conformal.point_bounds(samples[:, 0])
    else:
        center, lower, upper = conformal.sample_bounds(samples, LEVEL)
    conformal.interval_family(center, lower, upper, lam)  # the recalibrated map (lam from the calibration split)
    seconds = time.perf_counter() - start
    arrays = {"center": center[0], "lower": lower[0], "upper": upper[0]}
    return arrays, seconds, post.wall_time


def case_path(problem: str, method: str, split: str, index: int) -> Path:
    return RESULTS / problem / method / f"{split}_{index:03d}.json"


def run_cases(args) -> None:
    prior = load_prior("phantom32")
    problem = build_problem(args.problem, prior)
    dirac = PROBLEMS[args.problem][2]
    for method in args.methods:
        draws = METHODS[method][1] if args.draws is None else args.draws
        for split, count in (("calibration", args.cal), ("test", args.test)):
            for index in range(count):
                path = case_path(args.problem, method, split, index)
                if path.exists():
                    continue
                truth, y = measurement(problem, split, index)
                seed = {"calibration": 1000, "test": 2000}[split] + index
                try:
                    arrays, seconds, wall = interval_map(method, problem, y, draws, seed, dirac)
                except SamplerDivergence as err:
                    record = {"method": method, "split": split, "index": index, "diverged": str(err)}
                else:
                    tru = truth[0, 0].numpy()
                    record = {"method": method, "split": split, "index": index, "draws": 1 if method in POINT else draws,
                              "seconds_to_map": seconds, "sampler_wall": wall,
                              "psnr": float(peak_signal_noise_ratio(tru, arrays["center"], data_range=1.0)),
                              "truth": tru.tolist(), **{k: v.tolist() for k, v in arrays.items()}}
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(record))
                os.replace(tmp, path)  # atomic: an interrupted run never leaves half a file
                print(f"{method} {split} {index}: {record.get('seconds_to_map', float('nan')):.1f} s "
                      f"{record.get('psnr', float('nan')):.2f} dB", flush=True)


def network_cost(prior, batch: int) -> float:
    """Median seconds of one forward pass of the prior's network at ``batch`` (3 calls after a warm-up)."""
    x = torch.randn(batch, *prior.event_shape)
    times = []
    with torch.no_grad():
        for r in range(4):
            start = time.perf_counter()
            prior.denoise(x, 500)
            if r:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_maps(args) -> None:
    """Seconds to the map at 64 draws on held-out case 0 (``--repeats`` times), with the network's cost around it."""
    prior = load_prior("phantom32")
    problem = build_problem(args.problem, prior)
    dirac = PROBLEMS[args.problem][2]
    _, y = measurement(problem, "test", 0)
    for method in args.methods:
        for repeat in range(args.repeats):
            path = RESULTS / args.problem / method / f"time_{repeat:03d}.json"
            if path.exists():
                continue
            before = network_cost(prior, MAP_DRAWS)
            _, seconds, wall = interval_map(method, problem, y, MAP_DRAWS, 5000 + repeat, dirac)
            after = network_cost(prior, MAP_DRAWS)
            record = {"method": method, "draws": 1 if method in POINT else MAP_DRAWS, "seconds_to_map": seconds,
                      "sampler_wall": wall, "network_call_64": [before, after], "threads": torch.get_num_threads()}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            print(f"{method} time {repeat}: {seconds:.1f} s (one forward at batch 64: {before:.2f} / {after:.2f} s)",
                  flush=True)


def load_split(problem: str, method: str, split: str) -> list[dict]:
    folder = RESULTS / problem / method
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"{split}_*.json"))] if folder.exists() else []


def _coverage(lam, t_bounds, tru, boot: int = 2000) -> dict:
    """Held-out coverage of the intervals scaled by ``lam``: mean over cases, 95% case-bootstrap interval, width."""
    lo, hi = conformal.interval_family(*t_bounds, lam)
    per_case = 1 - conformal.miscoverage_risk(lo, hi, tru)
    rng = np.random.default_rng(0)
    means = per_case[rng.integers(0, len(per_case), (boot, len(per_case)))].mean(1)
    return {"lam": float(np.mean(lam)), "coverage": float(per_case.mean()),
            "ci": (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))), "width": float(np.mean(hi - lo))}


def summarise(problem: str, method: str) -> dict | None:
    """Both recalibrations learned on the calibration cases, checked on the held-out ones, and the time to the map.

    * ``split``: split conformal with the pixels of all calibration cases pooled: ``lambda`` = the 90% quantile
      (``method="higher"``) of :func:`~bayesinv.diagnostics.conformal.needed_scale` over them. Targets 90% of pixels
      exactly, with no finite-sample guarantee per image (pixels of one image are not exchangeable);
    * ``crc``: conformal risk control, ``rcps_calibrate(groups="scalar", method="crc")``: expected miscoverage
      <= 0.1 guaranteed, at the price of ``(n R + 1) / (n + 1) <= 0.1``, i.e. a calibration-split miscoverage of at
      most ``(0.1 (n + 1) - 1) / n`` (0.044 for n = 16): above 92% coverage for n < 45 cases.
    """
    cal = [r for r in load_split(problem, method, "calibration") if "diverged" not in r]
    test = [r for r in load_split(problem, method, "test") if "diverged" not in r]
    diverged = sum("diverged" in r for s in ("calibration", "test") for r in load_split(problem, method, s))
    if len(cal) < 2 or not test:
        return None
    stack = lambda rows, key: np.stack([np.asarray(r[key])[None] for r in rows])  # noqa: E731  (N, 1, H, W)
    c_bounds = tuple(stack(cal, k) for k in ("center", "lower", "upper"))
    t_bounds = tuple(stack(test, k) for k in ("center", "lower", "upper"))
    c_tru, t_tru = stack(cal, "truth"), stack(test, "truth")
    needed = conformal.needed_scale(*c_bounds, c_tru)
    split_lam = float(np.quantile(needed, LEVEL, method="higher"))
    crc = conformal.rcps_calibrate(*c_bounds, c_tru, alpha=1 - LEVEL, groups="scalar", method="crc")
    timed = [json.loads(p.read_text()) for p in sorted((RESULTS / problem / method).glob("time_*.json"))]
    if timed:  # the fastest run (the least disturbed by the machine's load), with the network's cost around it
        best = min(timed, key=lambda r: r["seconds_to_map"])
        seconds, call = best["seconds_to_map"], statistics.mean(best["network_call_64"])
        slowest = max(r["seconds_to_map"] for r in timed)
        source = f"fastest of {len(timed)} runs at 64 draws (slowest {slowest:.2f} s)" if len(timed) > 1 else \
            "1 run at 64 draws"
    elif test[0]["draws"] in (1, MAP_DRAWS):
        seconds, call = statistics.median(r["seconds_to_map"] for r in test), float("nan")
        source = f"median of {len(test)} held-out cases"
    else:
        seconds, call, source = float("nan"), float("nan"), "not timed"
    return {"method": method, "label": METHODS[method][0], "seconds": seconds, "time_source": source, "call": call,
            "draws": test[0]["draws"], "num_cal": len(cal), "num_test": len(test), "diverged": diverged,
            "coverage_before": float(1 - conformal.miscoverage_risk(t_bounds[1], t_bounds[2], t_tru).mean()),
            "split": _coverage(split_lam, t_bounds, t_tru), "crc": _coverage(crc.lam, t_bounds, t_tru),
            "crc_controlled": crc.controlled, "psnr": statistics.mean(r["psnr"] for r in test)}


def table(args) -> None:
    rows = [s for m in METHODS if (s := summarise(args.problem, m)) is not None]
    rows.sort(key=lambda r: r["seconds"] if np.isfinite(r["seconds"]) else float("inf"))
    print(f"{args.problem}, sigma_y = 0.05, 90% intervals recalibrated by a scalar lambda learned on the calibration "
          f"cases; coverage = mean over held-out cases of the fraction of pixels covered (95% case bootstrap)")
    print("| method | s to map | timed by | one forward at batch 64, s | draws / case | cases cal + held-out | coverage "
          "before | split conformal: lambda, coverage | CRC: lambda, coverage | PSNR dB |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def cell(c):
        return f"{c['lam']:.2f}, {100 * c['coverage']:.1f}% ({100 * c['ci'][0]:.1f}–{100 * c['ci'][1]:.1f})"

    for r in rows:
        div = f" ({r['diverged']} diverged)" if r["diverged"] else ""
        crc = cell(r["crc"]) + ("" if r["crc_controlled"] else " (not controlled)")
        before = "–" if r["method"] in POINT else f"{100 * r['coverage_before']:.1f}%"
        call = "–" if not np.isfinite(r["call"]) else f"{r['call']:.2f}"
        secs = f"{r['seconds']:.2f}" if r["seconds"] < 1 else f"{r['seconds']:.1f}"
        print(f"| {r['label']} | {secs} | {r['time_source']} | {call} | {r['draws']} | {r['num_cal']} + "
              f"{r['num_test']}{div} | {before} | {cell(r['split'])} | {crc} | "
              f"{r['psnr']:.2f} |")
    for key, name in (("split", "split conformal"), ("crc", "CRC")):
        for kind, group in (("sampler", [r for r in rows if r["method"] not in POINT]),
                            ("point estimate", [r for r in rows if r["method"] in POINT])):
            ok = [r for r in group if abs(r[key]["coverage"] - LEVEL) <= 0.02 and np.isfinite(r["seconds"])]
            if ok:
                best = min(ok, key=lambda r: r["seconds"])
                print(f"{name}: fastest {kind} with held-out coverage within 90 +- 2%: {best['label']}, "
                      f"{best['seconds']:.2f} s (goal <= 10 s: {'met' if best['seconds'] <= 10 else 'missed'})")
            else:
                print(f"{name}: no {kind}'s held-out coverage is within 90 +- 2%")
    out = RESULTS / f"summary_{args.problem}.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"(summary: {out.relative_to(RESULTS.parent.parent.parent)})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "time", "table"):
        p = sub.add_parser(name)
        p.add_argument("--problem", default="deblur", choices=list(PROBLEMS))
        if name != "table":
            p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
            p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
        if name == "run":
            p.add_argument("--cal", type=int, default=16, help="calibration cases")
            p.add_argument("--test", type=int, default=16, help="held-out cases")
            p.add_argument("--draws", type=int, default=None, help="override the draws per case of every method")
        if name == "time":
            p.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    {"run": run_cases, "time": time_maps, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
