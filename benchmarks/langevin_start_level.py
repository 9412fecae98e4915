"""Annealed Langevin on phantom32: where the chains start (the top noise level) against what they reach.

One CALIBRATION phantom (never the test split), deblurring (std 1.5 px) and 50% inpainting, sigma_y = 0.05,
10 levels x 10 steps, 4 chains; PSNR of the posterior mean (scikit-image) for the VP schedule's top level
(~157, the default before), ``sqrt(d) = 32`` (the default for network priors: Song & Ermon's largest distance
between images in [0, 1]) and 20 (``benchmarks/smc_langevin_phantom32.py``, the calibration studies).

    python benchmarks/langevin_start_level.py          # ~1 min on 2 cores
"""

from __future__ import annotations

import time

import torch
from skimage.metrics import peak_signal_noise_ratio

from bayesinv import Gaussian, InverseProblem
from bayesinv.data.phantoms import phantom_dataset
from bayesinv.operators.registry import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import sample_annealed_langevin


def main() -> None:
    prior = load_prior("phantom32")
    top = float((prior.schedule.sigma / prior.schedule.alpha).max())
    truth = phantom_dataset("calibration", 1, 32, seed=0).images.double()
    print("| problem | start level | PSNR of the mean (dB) | seconds |")
    print("|---|---|---|---|")
    for name in ("deblur", "inpaint"):
        problem = InverseProblem(make_operator(name, (1, 32, 32)), Gaussian(0.05), prior)
        y = problem.simulate(truth, generator=torch.Generator().manual_seed(3)).float()
        for label, levels in ((f"{top:.0f} (schedule top)", (top, 0.01)), ("32 (default, sqrt(d))", None),
                              ("20", (20.0, 0.01))):
            start = time.perf_counter()
            post = sample_annealed_langevin(problem, y, num_samples=4, steps=10, steps_per_level=10,
                                            noise_levels=levels, generator=torch.Generator().manual_seed(1),
                                            progress=False)
            mean = post.mean()[0].reshape(32, 32).double().numpy().clip(0, 1)
            psnr = peak_signal_noise_ratio(truth[0, 0].numpy(), mean, data_range=1.0)
            print(f"| {name} | {label} | {psnr:.2f} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
