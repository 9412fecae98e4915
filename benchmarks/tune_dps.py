"""Choose DPS's guidance scale zeta' for the phantom32 prior on the CALIBRATION split (never the test split).

For each problem of ``benchmarks/samplers_phantom.py`` (deblur std 1.5 px, 50% inpainting, 4x MRI;
sigma_y = 0.05) and each zeta' on the grid, runs DPS on ``--images`` calibration phantoms and prints the
PSNR of the posterior mean (scikit-image, data range 1); the best zeta' per problem is printed as the dict
recorded in ``bayesinv/samplers/dps.py::TUNED_GUIDANCE_SCALES``.

    python benchmarks/tune_dps.py --quick     # 1 image, 2 chains, 100 steps, 4 values (CPU: ~15 min)
    python benchmarks/tune_dps.py --steps 1000 --images 8 --num-chains 4   # the default 1000 steps (GPU)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from skimage.metrics import peak_signal_noise_ratio

from bayesinv.data import phantom_dataset
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import sample_dps
from samplers_phantom import PROBLEMS, build_problem

OPERATOR_CLASS = {"deblur": "Blur", "inpaint": "Inpaint", "mri": "MRI"}


def score(problem, truths, zeta: float, args) -> float:
    """Mean PSNR of the DPS posterior mean over the calibration images."""
    values = []
    for index in range(truths.shape[0]):
        truth = truths[index:index + 1]
        y = problem.simulate(truth.double(), generator=torch.Generator().manual_seed(args.seed + index))
        y = y.to(torch.complex64 if y.is_complex() else torch.float32)
        post = sample_dps(problem, y, num_samples=args.num_chains, steps=args.steps, guidance_scale=zeta,
                          generator=torch.Generator().manual_seed(args.seed + 100 + index), progress=False)
        mean = post.mean()[0].reshape(truth.shape[-2:]).double().numpy()
        values.append(peak_signal_noise_ratio(truth[0, 0].double().numpy(), mean, data_range=1.0))
    return statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="phantom32")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--grid", type=float, nargs="+", default=[0.1, 0.3, 0.5, 1.0, 2.0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1 image, 2 chains, 100 steps, grid 0.3 1 3 10")
    args = parser.parse_args()
    if args.quick:
        args.images, args.num_chains, args.steps, args.grid = 1, 2, 100, [0.3, 1.0, 3.0, 10.0]
    prior = load_prior(args.prior)
    truths = phantom_dataset("calibration", args.images, prior.event_shape[-1], seed=args.seed).images.float()
    print(f"DPS zeta' on {args.prior}, calibration split: {args.images} image(s), {args.num_chains} chains, "
          f"{args.steps} steps; PSNR of the posterior mean")
    best = {}
    for name in args.problems:
        problem = build_problem(name, prior, seed=args.seed)
        results = {}
        for zeta in args.grid:
            start = time.perf_counter()
            results[zeta] = score(problem, truths, zeta, args)
            print(f"  {name:<8} zeta'={zeta:<6g} PSNR {results[zeta]:6.2f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)
        best[OPERATOR_CLASS[name]] = max(results, key=results.get)
    print(f"\nchosen ({args.steps} steps): {{{args.prior!r}: {best}}}")


if __name__ == "__main__":
    main()
