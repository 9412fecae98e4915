"""How far from the exact posterior? The MCGdiff Gaussian-mixture testbed (Cardoso et al. 2023).

For d in {8, 80} and d_y in {1, 2, 4} random measurements, prints the sliced-Wasserstein distance (SW2)
to exact posterior samples of

* prior samples (what ignoring the data costs),
* exact posterior samples (the noise floor at this sample size: mean ± sd over 4 independent sets),
* NumPyro NUTS samples (low d only; chains start at prior draws and may miss separated modes).

All sample sets have the same size and are compared with the same exact reference set and the same
random directions, so a row reads "floor <= method <= prior" for a useful sampler. 'modes' is the
effective number of posterior components, exp(entropy of the posterior weights).

    python benchmarks/exact_testbed.py            # ~1-3 minutes on 2 cores
    python benchmarks/exact_testbed.py --no-nuts  # seconds
"""

from __future__ import annotations

import argparse
import time

import torch

from bayesinv.diagnostics.distances import distance_to_reference
from bayesinv.priors import mixture_testbed


def run(dims, num_measurements, *, num_samples: int, seed: int, nuts_max_dim: int, projections: int,
        repeats: int = 4) -> list[dict]:
    """One row per (d, d_y); the exact row is the mean (and sd) of ``repeats`` independent exact sets."""
    rows = []
    for dim in dims:
        for m in num_measurements:
            bed = mixture_testbed(dim, m, generator=torch.Generator().manual_seed(seed + 1000 * dim + m))
            post, prior = bed.posterior, bed.problem.prior

            def distance(samples):
                return distance_to_reference(samples, post, generator=torch.Generator().manual_seed(seed),
                                             num_projections=projections)

            row = {"d": dim, "d_y": m, "sigma_y": bed.problem.noise.sigma,
                   "modes": float(torch.exp(-(post.weights * post.weights.clamp_min(1e-300).log()).sum()))}
            prior_res = distance(prior.sample_n(num_samples, generator=torch.Generator().manual_seed(seed + 1)))
            row["prior"] = prior_res.distance
            floors = torch.tensor([prior_res.floor] + [
                distance(post.sample(num_samples, generator=torch.Generator().manual_seed(seed + 2 + r))).distance
                for r in range(repeats - 1)])
            row["exact"], row["exact_sd"] = float(floors.mean()), float(floors.std()) if repeats > 1 else 0.0
            row["nuts"], row["nuts_s"] = float("nan"), float("nan")
            if dim <= nuts_max_dim:
                from bayesinv.samplers.reference import sample_nuts

                chains = 4
                nuts = sample_nuts(bed.problem, bed.y, num_samples=num_samples // chains, num_warmup=500,
                                   num_chains=chains, seed=seed)
                row["nuts"], row["nuts_s"] = distance(nuts).distance, nuts.wall_time
            rows.append(row)
            print_row(row)
    return rows


HEADER = f"{'d':>4} {'d_y':>4} {'sigma_y':>8} {'modes':>6} | {'SW prior':>9} {'SW exact (floor)':>17} " \
         f"{'SW NUTS':>8} {'NUTS s':>7}"


def print_row(row: dict) -> None:
    print(f"{row['d']:>4} {row['d_y']:>4} {row['sigma_y']:>8.3f} {row['modes']:>6.2f} | {row['prior']:>9.3f} "
          f"{row['exact']:>9.3f} ± {row['exact_sd']:<5.3f} {row['nuts']:>8.3f} {row['nuts_s']:>7.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 80])
    parser.add_argument("--measurements", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--projections", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nuts-max-dim", type=int, default=8, help="run NUTS for d <= this")
    parser.add_argument("--no-nuts", action="store_true")
    args = parser.parse_args()
    print(f"MCGdiff mixture testbed: 25 components, SW2 with {args.projections} directions, "
          f"{args.num_samples} samples per set; 'modes' = exp(entropy of the posterior weights)")
    print(HEADER)
    start = time.perf_counter()
    run(args.dims, args.measurements, num_samples=args.num_samples, seed=args.seed,
        nuts_max_dim=-1 if args.no_nuts else args.nuts_max_dim, projections=args.projections)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
