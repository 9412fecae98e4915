"""Posterior samplers on the MCGdiff Gaussian-mixture testbed (Cardoso et al. 2023): how far from exact?

For each case (d, d_y, sigma_y) the script prints, per method, the sliced-Wasserstein distance SW2 to exact
posterior samples, its ratio to the noise floor (the mean SW of independent exact sets of the same size to
the same reference set, same directions), the network-call count per draw (NFE) and the wall time:

* prior draws (what ignoring the data costs) and the exact floor,
* DPS (Chung et al. 2023), annealed Langevin (Jalal et al. 2021), score-SDE with data consistency
  (Song et al. 2022; ``score_sde_dc`` with its default truncation of ``A^+``, ``score_sde_dc_exact`` with the
  paper's exact ``A^+``), DDRM (Kawar et al. 2022), MALA (started at prior draws; explicit mixture density),
* twisted SMC with N particles per system; each system returns ``num_samples / systems`` draws and the number of
  systems is ``min(num_samples, particle_budget // N)`` (so N = 16 gives independent draws and larger N shares
  one cloud among several draws at a similar cost),
* NumPyro NUTS (4 chains started at prior draws) for d <= --nuts-max-dim.

``sigma_y`` is the testbed's own random draw ("bed") or a given value (the same A and x, a fresh y).
A ratio near 1 is as good as exact sampling at this sample size.

    python benchmarks/samplers_mixture.py --quick                        # d = 8, d_y = 1 and 4, ~3 min
    python benchmarks/samplers_mixture.py                                # d = 8 and 80, d_y = 1, 2, 4
    python benchmarks/samplers_mixture.py --sigma-y bed 0.05 1.0 --json mixture.json
    python benchmarks/samplers_mixture.py --summary mix8.json mix80.json     # the table of saved runs
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.diagnostics.distances import _as_points, random_directions, sliced_wasserstein
from bayesinv.priors import exact_posterior, mixture_testbed
from bayesinv.samplers import (sample_annealed_langevin, sample_ddrm, sample_dps, sample_mala, sample_score_sde,
                               sample_smc)


def make_case(dim: int, num_measurements: int, sigma_y: str, seed: int):
    """The testbed's problem, with ``sigma_y`` replaced (and y redrawn from the same x) unless it is ``"bed"``."""
    bed = mixture_testbed(dim, num_measurements, generator=torch.Generator().manual_seed(seed + 1000 * dim + num_measurements))
    if sigma_y == "bed":
        return bed.problem, bed.y, bed.posterior
    problem = InverseProblem(bed.problem.operator, Gaussian(float(sigma_y)), bed.problem.prior, name=bed.problem.name)
    y = problem.simulate(bed.x, generator=torch.Generator().manual_seed(seed + 7))
    return problem, y, exact_posterior(problem, y)


def methods(args) -> dict:
    """name -> callable(problem, y, num_samples, generator) returning a Posterior (or draws)."""
    table = {
        "dps": lambda p, y, n, g: sample_dps(p, y, num_samples=n, steps=args.diffusion_steps, generator=g,
                                             progress=False),
        "annealed_langevin": lambda p, y, n, g: sample_annealed_langevin(p, y, num_samples=n, generator=g,
                                                                         likelihood_inflation="operator",
                                                                         progress=False),
        "score_sde_dc": lambda p, y, n, g: sample_score_sde(p, y, num_samples=n, steps=args.diffusion_steps,
                                                            generator=g, progress=False),
        "score_sde_dc_exact": lambda p, y, n, g: sample_score_sde(p, y, num_samples=n, steps=args.diffusion_steps,
                                                                  cutoff=0.0, generator=g, progress=False),
        "ddrm": lambda p, y, n, g: sample_ddrm(p, y, num_samples=n, generator=g, progress=False),
        "mala": lambda p, y, n, g: sample_mala(p, y, num_samples=n, steps=args.mala_steps,
                                               init=p.prior.sample_n(n, generator=g), generator=g, progress=False),
    }
    for particles in args.smc_particles:
        def smc(p, y, n, g, particles=particles):
            systems = max(1, min(n, args.particle_budget // particles))
            return sample_smc(p, y, num_samples=n, num_particles=particles, num_systems=systems,
                              steps=args.smc_steps, generator=g, progress=False)
        table[f"smc_N{particles}"] = smc
    return table


def run_case(dim, num_measurements, sigma_y, args) -> list[dict]:
    problem, y, exact = make_case(dim, num_measurements, sigma_y, args.seed)
    n = args.num_samples
    gen = torch.Generator().manual_seed(args.seed)
    reference = exact.sample(args.num_reference, generator=gen)
    directions = random_directions(dim, args.projections, generator=gen)

    def sw(samples) -> float:
        return float(sliced_wasserstein(_as_points("samples", samples), reference, directions=directions))

    floors = torch.tensor([sw(exact.sample(n, generator=gen)) for _ in range(args.floor_repeats)])
    floor = float(floors.mean())
    modes = float(torch.exp(-(exact.weights * exact.weights.clamp_min(1e-300).log()).sum()))
    head = {"d": dim, "d_y": num_measurements, "sigma_y": float(problem.noise.sigma), "modes": modes,
            "floor": floor, "floor_sd": float(floors.std())}
    rows = [dict(head, method="prior", sw=sw(problem.prior.sample_n(n, generator=gen)), nfe=0, seconds=0.0)]
    print(f"\nd={dim} d_y={num_measurements} sigma_y={head['sigma_y']:.3f} modes={modes:.2f} "
          f"floor={floor:.3f}±{head['floor_sd']:.3f}")
    print(f"  {'method':<18} {'SW':>7} {'SW/floor':>8} {'NFE':>7} {'seconds':>8}")
    todo = methods(args)
    for name in args.methods or list(todo):
        start = time.perf_counter()
        post = todo[name](problem, y, n, torch.Generator().manual_seed(args.seed + 1))
        rows.append(dict(head, method=name, sw=sw(post), nfe=post.nfe, seconds=time.perf_counter() - start))
        _print(rows[-1])
    if dim <= args.nuts_max_dim:
        from bayesinv.samplers.reference import sample_nuts

        start = time.perf_counter()
        post = sample_nuts(problem, y, num_samples=n // 4, num_warmup=500, num_chains=4, seed=args.seed)
        rows.append(dict(head, method="nuts", sw=sw(post), nfe=post.nfe, seconds=time.perf_counter() - start))
        _print(rows[-1])
    _print(rows[0])
    return rows


def _print(row: dict) -> None:
    print(f"  {row['method']:<18} {row['sw']:>7.3f} {row['sw'] / row['floor']:>8.2f} {row['nfe']:>7d} "
          f"{row['seconds']:>8.1f}", flush=True)


def summary(rows: list[dict]) -> None:
    """One line per case: SW / floor of every method (a README table)."""
    names = list(dict.fromkeys(r["method"] for r in rows))
    print("\nSW / noise floor (1 = as good as exact sampling)")
    print("| d | d_y | sigma_y | " + " | ".join(names) + " |")
    print("|" + "---|" * (3 + len(names)))
    cases = list(dict.fromkeys((r["d"], r["d_y"], r["sigma_y"]) for r in rows))
    for case in cases:
        by = {r["method"]: r for r in rows if (r["d"], r["d_y"], r["sigma_y"]) == case}
        cells = [f"{by[m]['sw'] / by[m]['floor']:.2f}" if m in by else "-" for m in names]
        print(f"| {case[0]} | {case[1]} | {case[2]:.3f} | " + " | ".join(cells) + " |")
    print("\nNFE per draw and mean wall time (s) per case")
    for m in names:
        sel = [r for r in rows if r["method"] == m]
        print(f"  {m:<18} NFE {sel[0]['nfe']:>7d}  {sum(r['seconds'] for r in sel) / len(sel):>7.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 80])
    parser.add_argument("--measurements", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--sigma-y", nargs="+", default=["bed"], help="'bed' (the testbed's draw) or values")
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-reference", type=int, default=4000)
    parser.add_argument("--floor-repeats", type=int, default=5)
    parser.add_argument("--projections", type=int, default=256)
    parser.add_argument("--diffusion-steps", type=int, default=200, help="steps of DPS and score-SDE")
    parser.add_argument("--smc-steps", type=int, default=100)
    parser.add_argument("--smc-particles", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--particle-budget", type=int, default=8192, help="SMC particles per run (all systems)")
    parser.add_argument("--mala-steps", type=int, default=1000)
    parser.add_argument("--methods", nargs="*", default=None, help="subset of methods (default all)")
    parser.add_argument("--nuts-max-dim", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="d = 8, d_y in {1, 4}, 300 draws")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--summary", nargs="+", default=None, metavar="JSON",
                        help="print the summary table of rows saved with --json (runs nothing)")
    args = parser.parse_args()
    if args.summary:
        rows = []
        for path in args.summary:
            with open(path) as fh:
                rows += json.load(fh)
        summary(rows)
        return
    if args.quick:
        args.dims, args.measurements, args.num_samples = [8], [1, 4], 300
    print(f"MCGdiff mixture testbed: 25 components, SW2 with {args.projections} directions, {args.num_samples} "
          f"draws per method, reference {args.num_reference} exact draws, floor over {args.floor_repeats} exact sets")
    start = time.perf_counter()
    rows = []
    for dim in args.dims:
        for m in args.measurements:
            for sigma in args.sigma_y:
                rows += run_case(dim, m, sigma, args)
    summary(rows)
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
