"""Seconds per case of DDRM (or DPS) on phantom32 with one case per call against G cases per call.

The study runner's ``batch_cases = G`` runs G cases of a split in one sampler call, so each network call
evaluates ``G x num_samples`` chains instead of ``num_samples``. This script times both on the calibration
studies' problem (32x32 Gaussian deblurring, std 1.5 px, sigma_y = 0.05, the shipped phantom32 prior in float32,
``--samples`` draws per case), on ``--threads`` torch threads (default 1), after a warm-up call of each: the G
cases one call each (``sample_ddrm``), then the same G cases in one call (``sample_ddrm_cases``), alternating
``--repeats`` times, and prints the best seconds per case of each side by side with their ratio (the best of
the repeats: on a shared machine the other processes only ever add time).

    python benchmarks/batch_cases.py [--cases 8] [--samples 32] [--steps 20] [--repeats 2] [--sampler dps --steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch

from bayesinv.builders import make_problem, resolve_prior
from bayesinv.samplers import CASE_SAMPLERS, SAMPLERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="G: cases per call in the batched run")
    parser.add_argument("--samples", type=int, default=32, help="posterior samples per case")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="ddrm", choices=sorted(CASE_SAMPLERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problem = make_problem("deblur", image_size=32, noise_sigma=0.05, prior=resolve_prior("phantom32"),
                           operator_options={"std": 1.5})
    truths = problem.prior.sample_n(args.cases, steps=20, generator=torch.Generator().manual_seed(0))
    y = problem.simulate(truths.reshape(args.cases, 1, 32, 32), generator=torch.Generator().manual_seed(1))
    y = y.to(torch.float32)
    single, batched = SAMPLERS[args.sampler], CASE_SAMPLERS[args.sampler]
    options = dict(num_samples=args.samples, steps=args.steps, progress=False)

    def one_per_call() -> float:
        start = time.perf_counter()
        for i in range(args.cases):
            single(problem, y[i : i + 1], generator=torch.Generator().manual_seed(i), **options)
        return (time.perf_counter() - start) / args.cases

    def all_in_one_call() -> float:
        start = time.perf_counter()
        posts = batched(problem, y, generator=torch.Generator().manual_seed(0), **options)
        assert len(posts) == args.cases
        return (time.perf_counter() - start) / args.cases

    single(problem, y[:1], generator=torch.Generator().manual_seed(0), **options)  # warm-up
    batched(problem, y[:2], generator=torch.Generator().manual_seed(0), **options)
    alone, grouped = float("inf"), float("inf")
    for _ in range(args.repeats):
        alone, grouped = min(alone, one_per_call()), min(grouped, all_in_one_call())
    print(f"{args.sampler} on phantom32 deblurring, {args.samples} samples x {args.steps} steps per case, "
          f"{torch.get_num_threads()} thread(s), best of {args.repeats}: G = 1: {alone:.2f} s per case; "
          f"G = {args.cases}: {grouped:.2f} s per case; ratio {alone / grouped:.2f}x")


if __name__ == "__main__":
    main()
