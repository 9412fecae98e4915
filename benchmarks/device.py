"""Draws per second of every posterior sampler on one device, at several chain counts (issue 18/19).

For each sampler of the registry that runs on a network prior (``mala`` needs a density, ``dirac`` its own
network, ``split_gibbs`` an exact-Gaussian split), the phantom32 (or phantom64) prior and the operator move to
``--device`` through ``.to``; the chains are drawn as one batch from a CPU generator (the same numbers on every
device). Printed: seconds per call and draws per second at each batch size, after one untimed warm-up call.

    python benchmarks/device.py                          # CUDA when present, else says so and stops
    python benchmarks/device.py --device cpu --batches 1 4 --steps 5   # the same code path on the CPU

Run it with the ``device`` tool when the workplace lends an accelerator; record the table in the README.
"""

from __future__ import annotations

import argparse
import time

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.data import phantom_dataset
from bayesinv.operators import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import SAMPLERS

SKIP = {"mala": "needs a prior with a density", "dirac": "needs a Dirac network",
        "split_gibbs": "an exact-Gaussian split, not a network sampler"}
STEPS = {"dps": 100, "ddrm": 20, "score_sde": 50, "annealed_langevin": 10, "ula": 100, "pnp_ula": 100, "smc": 25}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None)
    parser.add_argument("--prior", default="phantom32", choices=["phantom32", "phantom64"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--steps", type=int, default=None, help="steps for every sampler (default: STEPS)")
    parser.add_argument("--samplers", nargs="+", default=None)
    args = parser.parse_args(argv)
    if args.device is None:
        print("no CUDA device on this machine: nothing timed (pass --device cpu to time the CPU)")
        return
    device = torch.device(args.device)
    prior = load_prior(args.prior).to(device)
    shape = tuple(prior.event_shape)
    operator = make_operator("deblur", shape, std=1.5).to(device)
    problem = InverseProblem(operator, Gaussian(0.05), prior, name=f"deblur-{shape[-1]}")
    truth = phantom_dataset("test", 1, shape[-1]).images.to(device)
    y = problem.simulate(truth, generator=torch.Generator().manual_seed(0))
    names = args.samplers or [n for n in SAMPLERS if n not in SKIP]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"prior {args.prior}, 32x32 deblur" if shape[-1] == 32 else f"device {device}, prior {args.prior}")
    print("| sampler | steps | chains | s per call | draws / s |")
    print("|---|---|---|---|---|")
    for name in names:
        steps = args.steps or STEPS[name]
        for batch in args.batches:
            def run():
                return SAMPLERS[name](problem, y, num_samples=batch, steps=steps, progress=False,
                                      generator=torch.Generator().manual_seed(1))
            run()  # warm-up (kernels, caches)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            print(f"| {name} | {steps} | {batch} | {seconds:.2f} | {batch / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
