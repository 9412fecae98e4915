"""PSNR of the posterior mean (4 chains) of twisted SMC and annealed Langevin on phantom32, 2 test phantoms.

Run: ``OMP_NUM_THREADS=1 python benchmarks/smc_langevin_phantom32.py [--images 2]`` (CPU, a few minutes).
Settings are the ones recommended for this prior at an affordable budget (see the printed settings).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.data import phantom_dataset
from bayesinv.operators import make_operator
from bayesinv.priors import load_prior
from bayesinv.samplers.annealed_langevin import sample_annealed_langevin
from bayesinv.samplers.smc import sample_smc

SETTINGS = {"smc": (sample_smc, {"steps": 25, "num_particles": 8}),
            "annealed_langevin": (sample_annealed_langevin,
                                  {"steps": 10, "steps_per_level": 10, "noise_levels": (20.0, 0.01)})}
OPERATORS = {"deblur": {"std": 1.5}, "inpaint": {}, "mri": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    prior = load_prior("phantom32")
    images = phantom_dataset("test", args.images).images.to(torch.float32)
    print("operator sampler image psnr_db wall_s settings")
    for op_name, op_kw in OPERATORS.items():
        problem = InverseProblem(make_operator(op_name, (1, 32, 32), **op_kw), Gaussian(0.05), prior)
        for i in range(args.images):
            x = images[i:i + 1]
            y = problem.simulate(x, generator=torch.Generator().manual_seed(i))
            y = y if y.is_complex() else y.to(torch.float32)
            for name, (sampler, kw) in SETTINGS.items():
                start = time.perf_counter()
                post = sampler(problem, y, num_samples=4, generator=torch.Generator().manual_seed(0),
                               progress=False, **kw)
                wall = time.perf_counter() - start
                mse = float(((post.samples.mean((0, 1)).float() - x[0]) ** 2).mean())
                print(f"{op_name} {name} {i} {10 * math.log10(1 / mse):.2f} {wall:.1f} {kw}", flush=True)


if __name__ == "__main__":
    main()
