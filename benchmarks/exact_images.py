"""Every sampler against the exact posterior of a 32x32 image prior with lesions.

The prior is :class:`bayesinv.priors.LesionMixturePrior` (stationary Gaussian background fitted to the training
phantoms plus at most one lesion, 16 locations x 2 signs, P(lesion) = 0.5); its posterior under the three
problems below is exact (:class:`bayesinv.priors.LesionPosteriorSolver`). Problems (sigma_y = 0.05): Gaussian
deblurring (std 1.5 px), inpainting (50% random pixels missing), single-coil MRI (4x Cartesian). Test cases are
drawn from the prior; every sampler is driven by the exact score (float64) through its public function.

Per sampler and problem (one JSONL file per pair under benchmarks/results/exact_images/<budget>/, one line per
case, so an interrupted run resumes):

* ``cover``: coverage of the truth by 90% intervals over all pixels, with a 95% case-bootstrap interval.
  With ``n = 19`` draws per case the interval is [min, max] of the draws (order statistics 1 and 19; for
  ``n = 39`` the 2nd and 38th), which contains a new draw from the same distribution with probability exactly
  ``(n - 1 - 2 (r - 1)) / (n + 1) = 0.9``: a calibrated sampler reads 90% without finite-draw bias.
* ``lesion cover``: the same on the pixels of the true lesion (cases with a lesion).
* ``width``: mean interval width over the mean width of the exact 90% equal-tailed intervals (root finding
  on the exact per-pixel mixture CDF). Exact draws read > 1 here (order statistics of n draws are wider).
* ``P(les) MAE``: mean |P^(lesion|y) - P(lesion|y)| where P^ is the average over the draws of the exact
  ``p(lesion | x)`` (an unbiased estimate for exact draws); ``ECE`` of P^ against the truth (10 bins);
  ``AUC`` of P^ for the truth (the exact posterior's AUC is in the ``exact`` rows).
* ``SW``: sliced Wasserstein (256 directions) between the draws and an exact reference set of the same
  size; the ``exact draws`` row is the noise floor (an independent exact set).
* ``NFE``: network calls per draw as the sampler reports them; ``s/case``: wall seconds per case.

The ``exact`` rows validate the table: ``exact intervals`` uses the exact quantiles, ``exact draws`` uses
n exact draws exactly as the samplers' draws are used. Both must read 90% within their intervals.

    OMP_NUM_THREADS=1 nohup python benchmarks/exact_images.py run --cases 200 > exact_images.log 2>&1 &
    python benchmarks/exact_images.py table          # the markdown table of whatever has finished
    python benchmarks/exact_images.py prior-step     # split Gibbs' prior step vs the exact denoising posterior
    python benchmarks/exact_images.py mixing         # lesion switches per split Gibbs sweep at fixed sigma
    python benchmarks/exact_images.py smc-check      # split Gibbs SMC's P(lesion) spread over clouds, one case
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.diagnostics.distances import random_directions, sliced_wasserstein
from bayesinv.operators import MRI, Blur, Inpaint
from bayesinv.operators.inpaint import random_mask
from bayesinv.operators.mri import cartesian_mask
from bayesinv.priors import LesionMixturePrior, LesionPosteriorSolver
from bayesinv.samplers import SAMPLERS

RESULTS = Path(__file__).parent / "results" / "exact_images"
SIGMA_Y = 0.05
SIZE = 32
# The settings a user would pass. SMC's defaults (256 particles per draw over all 1000 steps, 256k network calls
# per draw) are out of reach here; 100 steps and one cloud of 256 particles shared by the draws is MCGdiff's use.
BUDGETS = {
    "user": {"dps": {}, "ddrm": {}, "score_sde": {}, "annealed_langevin": {}, "ula": {}, "pnp_ula": {}, "mala": {},
             "smc": {"steps": 100, "num_particles": 256, "num_systems": 1}, "split_gibbs": {}, "split_gibbs_smc": {}},
    # About 4x the user budget's network calls (DDRM 5x, SMC 8x). DPS has no larger budget: the user's already
    # takes all 1000 steps of the schedule. The README says which of these have results.
    "large": {"smc": {"steps": 200, "num_particles": 1024, "num_systems": 1}, "ddrm": {"steps": 100},
              "score_sde": {"corrector_steps": 2}, "annealed_langevin": {"steps_per_level": 300},
              "ula": {"steps": 4000}, "pnp_ula": {"steps": 4000}, "mala": {"steps": 4000},
              "split_gibbs": {"steps": 400}, "split_gibbs_smc": {"steps": 400}},
}
SKIPPED = {"dirac": "needs a trained Dirac network (models/); it does not use a score prior"}


def make_prior() -> LesionMixturePrior:
    return LesionMixturePrior.from_phantoms(SIZE, num_phantoms=2000, seed=0, num_locations=16, radius=1.5,
                                           contrast=0.35)


def make_problems(prior) -> dict[str, InverseProblem]:
    shape = (1, SIZE, SIZE)
    ops = {"deblur": Blur.gaussian(shape, 1.5),
           "inpaint": Inpaint(shape, random_mask((SIZE, SIZE), 0.5, torch.Generator().manual_seed(1))),
           "mri": MRI(shape, cartesian_mask(SIZE, 4, generator=torch.Generator().manual_seed(2)))}
    return {name: InverseProblem(op, Gaussian(SIGMA_Y), prior, name=f"exact-{name}-{SIZE}") for name, op in ops.items()}


def make_case(prior, problem, name: str, index: int):
    """Truth ``x`` (shared by the problems), its component, the lesion mask and ``y``."""
    x, comp = prior.sample_components(1, generator=torch.Generator().manual_seed(10_000 + index))
    seed = {"deblur": 1, "inpaint": 2, "mri": 3}[name]
    y = problem.simulate(x, generator=torch.Generator().manual_seed(100_000 * seed + index))
    mask = prior.masks[int(comp) - 1, 0] if int(comp) > 0 else torch.zeros(SIZE, SIZE, dtype=torch.bool)
    return x[0, 0], int(comp), mask, y


def order_interval(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact-90% order-statistic interval of ``n = 20 r - 1`` draws: ranks ``r`` and ``n + 1 - r``."""
    n = draws.shape[0]
    if (n + 1) % 20:
        raise ValueError(f"the number of draws must be 19, 39, 59, ... (n + 1 divisible by 20), got {n}")
    rank = (n + 1) // 20
    ordered = draws.sort(0).values
    return ordered[rank - 1], ordered[n - rank]


def score_draws(prior, draws, truth, mask, exact_lo, exact_hi, reference, directions) -> dict:
    lo, hi = order_interval(draws)
    inside = (truth >= lo) & (truth <= hi)
    return {"covered": int(inside.sum()), "pixels": inside.numel(), "lesion_covered": int(inside[mask].sum()),
            "lesion_pixels": int(mask.sum()), "width_ratio": float((hi - lo).mean() / (exact_hi - exact_lo).mean()),
            "p_hat": float(prior.lesion_probability(draws[:, None]).mean()),
            "sw": float(sliced_wasserstein(draws.reshape(len(draws), -1), reference.reshape(len(reference), -1),
                                           directions=directions))}


def results_dir(budget: str, draws: int) -> Path:
    """``results/exact_images/<budget>`` for 19 draws per case (the first runs), ``<budget>_n<draws>`` else."""
    return RESULTS / (budget if draws == 19 else f"{budget}_n{draws}")


def read_records(path: Path, repair: bool = False) -> list[dict]:
    """The records of a results file, one JSON object per line.

    A last line without its newline is a write cut short (a killed run): it is left out with a warning, and with
    ``repair=True`` cut from the file, so that the next append starts on a line of its own and the case is rerun.
    Any other line that does not parse is an error naming the file and line: that is not a cut-short write."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    if tail:
        print(f"warning: {path}: dropping a cut-short last line ({len(tail)} characters)", file=sys.stderr)
        if repair:
            with open(path, "r+") as fh:
                fh.truncate(len(text.encode()) - len(tail.encode()))
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not a JSON record ({exc})") from None
    return records


def run(args) -> None:
    prior = make_prior()
    problems = {k: v for k, v in make_problems(prior).items() if k in args.problems}
    budget = BUDGETS[args.budget]
    samplers = [s for s in args.samplers if s == "exact" or s in budget]
    out_dir = results_dir(args.budget, args.draws)
    out_dir.mkdir(parents=True, exist_ok=True)
    solvers = {}
    done = {}
    for name in problems:
        for s in samplers:
            done[s, name] = {r["case"] for r in read_records(out_dir / f"{s}__{name}.jsonl", repair=True)}
    shard, shards = args.shard
    for index in range(shard, args.cases, shards):
        for name, problem in problems.items():
            todo = [s for s in samplers if index not in done[s, name]]
            if not todo:
                continue
            if name not in solvers:
                solvers[name] = LesionPosteriorSolver(problem)
            truth, comp, mask, y = make_case(prior, problem, name, index)
            post = solvers[name].posterior(y)
            exact_lo, exact_hi = (v[0] for v in post.interval(0.9))
            g = torch.Generator().manual_seed(7 + index)
            reference = post.sample(args.draws, generator=g)[:, 0]
            directions = random_directions(prior.dim, 256, generator=g)
            base = {"case": index, "has_lesion": comp > 0, "p_exact": post.lesion_probability}
            for s in todo:
                start = time.perf_counter()
                record = dict(base, sampler=s, budget=args.budget, settings=budget.get(s, {}), draws=args.draws)
                try:
                    if s == "exact":
                        draws, nfe = post.sample(args.draws, generator=torch.Generator().manual_seed(3 + index)), 0
                        inside = (truth >= exact_lo) & (truth <= exact_hi)
                        record.update(quantile_covered=int(inside.sum()),
                                      quantile_lesion_covered=int(inside[mask].sum()))
                    else:
                        res = SAMPLERS[s](problem, y, num_samples=args.draws, progress=False,
                                          generator=torch.Generator().manual_seed(5 + index), **budget[s])
                        draws, nfe = res.samples.reshape(-1, 1, SIZE, SIZE)[: args.draws], res.nfe
                    draws = draws[:, 0].to(torch.float64)
                    if not bool(torch.isfinite(draws).all()):
                        raise FloatingPointError("non-finite draws")
                    record.update(score_draws(prior, draws, truth, mask, exact_lo, exact_hi, reference, directions))
                    record["nfe"] = nfe
                except Exception as exc:  # noqa: BLE001 - a failing sampler is a result, recorded and reported
                    record["error"] = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
                record["seconds"] = time.perf_counter() - start
                with open(out_dir / f"{s}__{name}.jsonl", "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                print(f"case {index} {name} {s}: {record.get('covered', 'ERR')}/1024 "
                      f"p^={record.get('p_hat', float('nan')):.3f} p={record['p_exact']:.3f} "
                      f"{record['seconds']:.1f}s", flush=True)


# -- the table ----------------------------------------------------------------------------------------------
def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    return float(greater)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(probs[sel].mean() - labels[sel].mean())
    return float(total)


def case_bootstrap(statistic, num_cases: int, reps: int = 2000) -> tuple[float, float]:
    """95% case-bootstrap interval of ``statistic(idx)``, which maps resampled case indices ``(reps, num_cases)``
    to ``reps`` values (the same resamples, seed 0, for every statistic of the table)."""
    idx = np.random.default_rng(0).integers(0, num_cases, size=(reps, num_cases))
    lo, hi = np.quantile(statistic(idx), [0.025, 0.975])
    return float(lo), float(hi)


def bootstrap(covered: np.ndarray, pixels: np.ndarray) -> tuple[float, float]:
    """Interval of the pooled coverage ``sum(covered) / sum(pixels)`` over cases."""
    return case_bootstrap(lambda idx: covered[idx].sum(1) / pixels[idx].sum(1), len(covered))


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """Interval of the mean of per-case ``values``."""
    return case_bootstrap(lambda idx: values[idx].mean(1), len(values))


def summarise(records: list[dict], quantile: bool = False) -> dict:
    ok = [r for r in records if "error" not in r]
    if not ok:
        return {"cases": 0, "errors": len(records)}
    key, lkey = ("quantile_covered", "quantile_lesion_covered") if quantile else ("covered", "lesion_covered")
    cov, pix = np.array([r[key] for r in ok]), np.array([r["pixels"] for r in ok])
    lcov, lpix = np.array([r[lkey] for r in ok]), np.array([r["lesion_pixels"] for r in ok])
    labels = np.array([r["has_lesion"] for r in ok])
    p_exact = np.array([r["p_exact"] for r in ok])
    p_hat = p_exact if quantile else np.array([r["p_hat"] for r in ok])
    lo, hi = bootstrap(cov, pix)
    llo, lhi = bootstrap(lcov[lpix > 0], lpix[lpix > 0]) if (lpix > 0).any() else (float("nan"),) * 2
    lesion = lcov.sum() / lpix.sum() if lpix.sum() else float("nan")
    return {"cases": len(ok), "errors": len(records) - len(ok), "cover": cov.sum() / pix.sum(), "cover_ci": (lo, hi),
            "lesion": lesion, "lesion_ci": (llo, lhi),
            "width": float("nan") if quantile else float(np.mean([r["width_ratio"] for r in ok])),
            "mae": float(np.abs(p_hat - p_exact).mean()), "mae_ci": mean_interval(np.abs(p_hat - p_exact)),
            "ece": ece(p_hat, labels), "auc": auc(p_hat, labels),
            "sw": float("nan") if quantile else float(np.mean([r["sw"] for r in ok])),
            "nfe": 0 if quantile else int(np.median([r["nfe"] for r in ok])),
            "seconds": float(np.mean([r["seconds"] for r in ok]))}


def _bar(s: dict, lesion_error: float) -> bool:
    """The bar of the module docstring with the lesion-pixel criterion ``|lesion_error| <= 3`` points."""
    return (s["cases"] > 0 and abs(s["cover"] - 0.9) <= 0.015 and abs(lesion_error) <= 0.03  # NaN: False
            and s["mae"] <= 0.05 and s["nfe"] <= 2000)


def passes(s: dict) -> bool:
    return _bar(s, s["lesion"] - 0.9)


def lesion_gap(exact: dict[int, dict], records: list[dict]) -> tuple[float, float, float]:
    """Lesion-pixel coverage of ``records`` minus that of the exact draws on the same cases (both pooled over
    the lesion pixels of the cases with a lesion), with a paired case-bootstrap 95% interval; NaN without
    shared lesion cases.

    Lesion pixels are chosen by the truth, so even the exact posterior need not cover them at 90% (on
    deblurring it hedges between "lesion" and "none" and its intervals then miss the lesion's contrast): the
    fair test of a sampler on them is against the exact draws, case by case."""
    pairs = [(r["lesion_covered"], exact[r["case"]]["lesion_covered"], r["lesion_pixels"]) for r in records
             if "error" not in r and r["case"] in exact and r["lesion_pixels"] > 0]
    if not pairs:
        return (float("nan"),) * 3
    s_cov, e_cov, pix = (np.array(v, dtype=float) for v in zip(*pairs, strict=True))
    lo, hi = case_bootstrap(lambda idx: (s_cov[idx].sum(1) - e_cov[idx].sum(1)) / pix[idx].sum(1), len(pix))
    return float((s_cov.sum() - e_cov.sum()) / pix.sum()), lo, hi


def passes_against_exact(s: dict, gap: float) -> bool:
    """The bar with its lesion-pixel criterion read against the exact draws: |gap| <= 3 points."""
    return _bar(s, gap)


def mae_floor(exact: dict[int, dict], records: list[dict]) -> float:
    """The exact draws' P(lesion) MAE on the cases of ``records`` (same draw count): the Monte-Carlo floor."""
    cases = [r["case"] for r in records if "error" not in r and r["case"] in exact]
    if not cases:
        return float("nan")
    return float(np.mean([abs(exact[c]["p_hat"] - exact[c]["p_exact"]) for c in cases]))


def table(args) -> None:
    print("| problem | sampler | budget | cases | cover 90% [boot 95%] | lesion cover "
          "| lesion − exact draws [paired boot] | width | P(les) MAE [boot] (floor) | ECE | AUC "
          "| SW (floor: exact draws) | NFE/draw | s/case | bar | bar vs exact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("deblur", "inpaint", "mri"):
        budgets = args.budgets or sorted(p.name for p in RESULTS.iterdir() if p.is_dir())
        for budget in budgets:
            paths = sorted((RESULTS / budget).glob(f"*__{name}.jsonl"))
            loaded = {path.name.split("__")[0]: read_records(path) for path in paths}
            if args.common and loaded:
                shared = set.intersection(*({r["case"] for r in recs if "error" not in r} for recs in loaded.values()))
                loaded = {k: [r for r in recs if r["case"] in shared] for k, recs in loaded.items()}
            exact = {r["case"]: r for r in loaded.get("exact", []) if "error" not in r}
            for sampler, records in loaded.items():
                rows = [("exact intervals", summarise(records, quantile=True)), ("exact draws", summarise(records))] \
                    if sampler == "exact" else [(sampler, summarise(records))]
                floor = mae_floor(exact, records)
                gap = lesion_gap(exact, records) if sampler != "exact" else (float("nan"),) * 3
                for label, s in rows:
                    if not s["cases"]:
                        print(f"| {name} | {label} | {budget} | 0 ({s['errors']} failed) |" + " |" * 12)
                        continue
                    fails = f" ({s['errors']} failed)" if s["errors"] else ""
                    fmt = lambda v, f: "–" if isinstance(v, float) and math.isnan(v) else format(v, f)  # noqa: E731
                    lesion = "–" if math.isnan(s["lesion"]) else \
                        f"{100 * s['lesion']:.1f} [{100 * s['lesion_ci'][0]:.1f}, {100 * s['lesion_ci'][1]:.1f}]"
                    mae = f"{s['mae']:.3f}" if label == "exact intervals" else \
                        f"{s['mae']:.3f} [{s['mae_ci'][0]:.3f}, {s['mae_ci'][1]:.3f}] ({fmt(floor, '.3f')})"
                    gap_text = "–" if math.isnan(gap[0]) else \
                        f"{100 * gap[0]:+.1f} [{100 * gap[1]:+.1f}, {100 * gap[2]:+.1f}]"
                    bar_exact = "yes" if label not in ("exact intervals", "exact draws") \
                        and passes_against_exact(s, gap[0]) else ""
                    print(f"| {name} | {label} | {budget} | {s['cases']}{fails} | {100 * s['cover']:.1f} "
                          f"[{100 * s['cover_ci'][0]:.1f}, {100 * s['cover_ci'][1]:.1f}] | {lesion} | {gap_text} "
                          f"| {fmt(s['width'], '.2f')} "
                          f"| {mae} | {s['ece']:.3f} | {fmt(s['auc'], '.3f')} | {fmt(s['sw'], '.3f')} "
                          f"| {s['nfe']} | {s['seconds']:.1f} "
                          f"| {'yes' if passes(s) and label != 'exact intervals' else ''} | {bar_exact} |")


def prior_step_check(args) -> None:
    """How close split Gibbs' prior step (DDPM from the split level of ``--sigma``, at most ``--max-steps`` steps)
    is to the exact denoising posterior: per-pixel spread, interval coverage and P(lesion | z)."""
    from bayesinv.operators import Identity
    from bayesinv.samplers.split_gibbs import _prior_step, split_noise_level

    prior = make_prior()
    t = split_noise_level(prior.schedule, 0.9 * args.sigma)  # ||A|| = 1 for the three problems
    rho = float(prior.schedule.sigma[t] / prior.schedule.alpha[t])
    solver = LesionPosteriorSolver(InverseProblem(Identity((1, SIZE, SIZE)), Gaussian(rho), prior))
    differences = []
    for index in range(args.cases):
        g = torch.Generator().manual_seed(index)
        z = prior.sample_n(1, generator=g)
        z = z + rho * torch.randn(z.shape, generator=g, dtype=torch.float64)
        exact = solver.posterior(z)
        draws, calls = _prior_step(prior, z.expand(args.draws, -1, -1, -1).clone(), t, g, args.max_steps)
        p_draws = float(prior.lesion_probability(draws).mean())
        differences.append(p_draws - exact.lesion_probability)
        lo, hi = (v[0] for v in exact.interval(0.9))
        inside = float(((draws[:, 0] >= lo) & (draws[:, 0] <= hi)).double().mean())
        ratio = float(draws.std(0).mean() / exact.std.mean())
        print(f"case {index}: rho = {rho:.4f} (t = {t}, {calls} calls); per-pixel std / exact {ratio:.3f}; "
              f"draws inside the exact 90% intervals {100 * inside:.1f}%; P(lesion | z) exact "
              f"{exact.lesion_probability:.3f}, draws {p_draws:.3f}", flush=True)
    d = np.array(differences)
    spread = f" +- {d.std(ddof=1) / math.sqrt(len(d)):.3f} (standard error)" if len(d) > 1 else ""
    print(f"P(lesion | z) of the draws minus exact over {len(d)} cases: mean {d.mean():+.3f}{spread}")


def smc_check(args) -> None:
    """The spread of split Gibbs SMC's P(lesion|y) over independent clouds on one case, against exact draws."""
    from bayesinv.samplers.split_gibbs_smc import split_gibbs_smc_particles

    prior = make_prior()
    problem = make_problems(prior)[args.problem]
    _, _, _, y = make_case(prior, problem, args.problem, args.case)
    post = LesionPosteriorSolver(problem).posterior(y)
    g, n = args.clouds, args.draws
    out = split_gibbs_smc_particles(problem.operator, prior, y.expand(g, *y.shape[1:]), SIGMA_Y, n,
                                    generator=torch.Generator().manual_seed(0), steps=args.steps, start=args.start,
                                    start_sweeps=args.start_sweeps, final_sweeps=args.final_sweeps)
    p_smc = prior.lesion_probability(out["x"].reshape(g * n, *prior.event_shape)).reshape(g, n).mean(1)
    exact = post.sample(g * n, generator=torch.Generator().manual_seed(1))
    p_exact = prior.lesion_probability(exact).reshape(g, n).mean(1)
    var = out["log_weight_var"]
    print(f"{args.problem} case {args.case}: P(lesion|y) = {post.lesion_probability:.3f}; {g} clouds of {n}: "
          f"{[round(float(v), 3) for v in p_smc]}, mean {float(p_smc.mean()):.3f}, sd {float(p_smc.std()):.3f} "
          f"(exact draws in sets of {n}: sd {float(p_exact.std()):.3f}); NFE/particle {out['nfe']}; per-level "
          f"log-weight variance max {max(var):.3f}, sum {sum(var):.2f}; resamplings per cloud "
          f"{sum(out['resampled']):.1f}")


def mixing_check(args) -> None:
    """How often split Gibbs chains at a fixed (tempered) noise level switch lesion component per sweep."""
    from bayesinv.samplers.split_gibbs import split_gibbs_sweep

    prior = make_prior()
    problem = make_problems(prior)[args.problem]
    _, _, _, y = make_case(prior, problem, args.problem, args.case)
    op = problem.operator
    g = torch.Generator().manual_seed(0)
    for sigma in args.sigmas:
        x = op.pinv(y).real.expand(args.chains, 1, SIZE, SIZE).clone()
        comps = []
        for _ in range(args.sweeps):
            x, _, _, _, rho = split_gibbs_sweep(op, prior, x, y, sigma, 1.01, 0.9, 24, g, 10)
            comps.append(prior.responsibilities(x).argmax(1))
        lesion = (torch.stack(comps[args.sweeps // 5:]) > 0).double()
        print(f"sigma {sigma} (rho {rho:.3f}): the lesion indicator changes in "
              f"{100 * float((lesion[1:] != lesion[:-1]).double().mean()):.1f}% of sweeps", flush=True)


def shard_spec(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, e.g. 0/2, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--cases", type=int, default=200)
    r.add_argument("--draws", type=int, default=19, help="19, 39, 59, 79, ...: see the module docstring; results "
                   "for other than 19 go to results/exact_images/<budget>_n<draws>/")
    r.add_argument("--budget", choices=sorted(BUDGETS), default="user")
    r.add_argument("--samplers", nargs="+", default=["exact", *BUDGETS["user"]])
    r.add_argument("--problems", nargs="+", default=["deblur", "inpaint", "mri"])
    r.add_argument("--shard", type=shard_spec, default=(0, 1), metavar="I/N",
                   help="only cases with index %% N == I (run N of these side by side; they append to the same "
                   "files, one line per case, so the table reads their union)")
    c = sub.add_parser("prior-step", help="split Gibbs' prior step against the exact denoising posterior")
    c.add_argument("--cases", type=int, default=2)
    c.add_argument("--draws", type=int, default=400)
    c.add_argument("--sigma", type=float, default=SIGMA_Y,
                   help="the likelihood's sigma; the prior step runs from the split level rho <= 0.9 sigma")
    c.add_argument("--max-steps", type=int, default=None, help="at most this many DDPM steps (default: all)")
    m = sub.add_parser("smc-check", help="split Gibbs SMC's P(lesion) spread over clouds on one case")
    m.add_argument("--problem", default="deblur")
    m.add_argument("--case", type=int, default=3)
    m.add_argument("--clouds", type=int, default=4)
    m.add_argument("--draws", type=int, default=79)
    m.add_argument("--steps", type=int, default=100)
    m.add_argument("--start", type=float, default=2.5)
    m.add_argument("--start-sweeps", type=int, default=30)
    m.add_argument("--final-sweeps", type=int, default=20)
    x = sub.add_parser("mixing", help="lesion-indicator switches per split Gibbs sweep at fixed noise levels")
    x.add_argument("--problem", default="deblur")
    x.add_argument("--case", type=int, default=3)
    x.add_argument("--chains", type=int, default=20)
    x.add_argument("--sweeps", type=int, default=25)
    x.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.07, 0.1, 0.15, 0.2, 0.3])
    t = sub.add_parser("table")
    t.add_argument("--budgets", nargs="+", default=None,
                   help="result folders under results/exact_images/ (default: all; e.g. user, user_n79)")
    t.add_argument("--common", action="store_true",
                   help="per folder and problem, only the cases that every sampler (and the exact rows) finished")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "run":
        unknown = set(args.samplers) - {"exact", *SAMPLERS}
        if unknown:
            raise SystemExit(f"unknown samplers {sorted(unknown)}; choose from exact, {sorted(SAMPLERS)}")
        run(args)
    elif args.command == "prior-step":
        prior_step_check(args)
    elif args.command == "smc-check":
        smc_check(args)
    elif args.command == "mixing":
        mixing_check(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
