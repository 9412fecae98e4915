"""Score-SDE's data-consistency cutoff on phantom32 deblurring: the sweep behind its default.

One CALIBRATION phantom (never the test split), Gaussian blur std 1.5 px, sigma_y = 0.05, 50 steps, 2 chains:
PSNR of the posterior mean (scikit-image) for each cutoff (singular values at or below it count as unmeasured;
0 is the paper's exact ``A^+``, which diverges here), with the number of kept components.

    python benchmarks/score_sde_cutoff.py                     # ~2 min on 2 cores
    python benchmarks/score_sde_cutoff.py --cutoffs 0.3 0.5
"""

from __future__ import annotations

import argparse
import time

import torch
from skimage.metrics import peak_signal_noise_ratio

from bayesinv import Gaussian, InverseProblem
from bayesinv.data.phantoms import phantom_dataset
from bayesinv.errors import SamplerDivergence
from bayesinv.operators.registry import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import sample_score_sde


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7])
    args = parser.parse_args(argv)
    prior = load_prior("phantom32")
    truth = phantom_dataset("calibration", 1, 32, seed=0).images.double()
    problem = InverseProblem(make_operator("deblur", (1, 32, 32)), Gaussian(0.05), prior)
    y = problem.simulate(truth, generator=torch.Generator().manual_seed(3)).float()
    singulars = problem.operator.svd().singulars
    print("| cutoff | kept components | PSNR of the mean (dB) | seconds |")
    print("|---|---|---|---|")
    for cutoff in args.cutoffs:
        start = time.perf_counter()
        try:
            post = sample_score_sde(problem, y, num_samples=2, steps=50, cutoff=cutoff,
                                    generator=torch.Generator().manual_seed(1), progress=False)
        except SamplerDivergence as err:
            print(f"| {cutoff:g} | {int((singulars > cutoff).sum())} | diverged: {err} | |", flush=True)
            continue
        mean = post.mean()[0].reshape(32, 32).double().numpy().clip(0, 1)
        psnr = peak_signal_noise_ratio(truth[0, 0].numpy(), mean, data_range=1.0)
        print(f"| {cutoff:g} | {int((singulars > cutoff).sum())} | {psnr:.2f} | {time.perf_counter() - start:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
