"""Seconds per call and draws per second of every posterior sampler on one device, at several chain counts (issue 18).

One prepared run for a borrowed accelerator: the phantom32 prior and the 32x32 deblurring operator (std 1.5 px,
sigma_y = 0.05, the problem the shipped Dirac network is trained for) move to ``--device`` through ``.to``; the chains
are drawn as one batch from a CPU generator (the same numbers on every device). Every sampler of the registry runs
but MALA, which needs a prior with a density (printed as skipped). Each (sampler, chain count) gets one untimed
warm-up call with 2 steps (kernels, cuDNN autotuning, caches) and one timed call; the rows go by chain count first,
so every sampler is timed at the small counts before the large ones, and rows that would start after
``--max-seconds`` are printed as skipped instead of run (the default keeps a CUDA run under ~8 minutes).

    python benchmarks/device.py                      # CUDA when present (else it says so and stops)
    python benchmarks/device.py --device cpu --quick # the same code path on the CPU: 2 steps, 1 and 2 chains (~2 min)

Run it with the ``device`` tool when the workplace lends an accelerator; record the table in the README.
"""

from __future__ import annotations

import argparse
import inspect
import time

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv._validation import check_device
from bayesinv.data import phantom_dataset
from bayesinv.operators import make_operator
from bayesinv.priors.hub import load_prior
from bayesinv.samplers import SAMPLERS

SKIP = {"mala": "needs a prior with a density (a network prior has none)"}
# steps of each sampler (the CLI's quick settings, README "Samplers on phantom32") and its fixed options
STEPS = {"dps": 100, "ddrm": 20, "score_sde": 50, "annealed_langevin": 10, "ula": 100, "pnp_ula": 100, "smc": 25,
         "dirac": None, "split_gibbs": 20}
OPTIONS = {"annealed_langevin": {"steps_per_level": 10}, "smc": {"num_particles": 8},
           "split_gibbs": {"anneal_sweeps": 10}}
SHORT = {"steps_per_level": 2, "anneal_sweeps": 2}  # warm-up and --quick values of the options above


def _options(name: str, steps: int | None, short: bool) -> dict:
    """Keyword arguments of one call: ``steps`` (or 2 when ``short``) and the sampler's fixed options."""
    params = inspect.signature(SAMPLERS[name]).parameters
    options = {k: (SHORT.get(k, v) if short else v) for k, v in OPTIONS.get(name, {}).items()
               if k in params or any(p.kind is p.VAR_KEYWORD for p in params.values())}
    if short:
        options["steps"] = 2
    elif steps is not None:
        options["steps"] = steps
    return options


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None)
    parser.add_argument("--prior", default="phantom32")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256], help="chain counts")
    parser.add_argument("--steps", type=int, default=None, help="steps for every sampler (default: STEPS)")
    parser.add_argument("--samplers", nargs="+", default=None, choices=sorted(SAMPLERS))
    parser.add_argument("--max-seconds", type=float, default=420.0,
                        help="start no new row after this many seconds (warm-ups included)")
    parser.add_argument("--quick", action="store_true", help="2 steps, chain counts 1 and 2 (a check of the path)")
    args = parser.parse_args(argv)
    if args.device is None:
        print("no CUDA device on this machine: nothing timed (pass --device cpu to time the CPU)")
        return
    device = check_device(args.device, "--device")
    if args.quick:
        args.batches = [1, 2]
    begin = time.perf_counter()
    prior = load_prior(args.prior).to(device)
    shape = tuple(prior.event_shape)
    operator = make_operator("deblur", shape, std=1.5).to(device)
    problem = InverseProblem(operator, Gaussian(0.05), prior, name=f"deblur-{shape[-1]}")
    truth = phantom_dataset("test", 1, shape[-1]).images.to(device)
    y = problem.simulate(truth, generator=torch.Generator().manual_seed(0))
    names = args.samplers or list(SAMPLERS)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU thread(s)"
    print(f"device {device} ({where}), torch {torch.__version__}, prior {args.prior}, {shape[-1]}x{shape[-1]} deblur "
          f"(std 1.5, sigma_y 0.05); setup {time.perf_counter() - begin:.1f} s")
    print("| sampler | steps | NFE | chains | s per call | draws / s |")
    print("|---|---|---|---|---|---|")
    for batch in args.batches:
        for name in names:
            if name in SKIP:
                if batch == args.batches[0]:
                    print(f"| {name} | – | – | – | skipped: {SKIP[name]} | – |", flush=True)
                continue
            steps = args.steps if args.steps is not None else STEPS[name]
            if time.perf_counter() - begin > args.max_seconds:
                print(f"| {name} | {steps} | – | {batch} | skipped: past --max-seconds {args.max_seconds:.0f} | – |",
                      flush=True)
                continue

            def run(short: bool):
                return SAMPLERS[name](problem, y, num_samples=batch, progress=False,
                                      generator=torch.Generator().manual_seed(1), **_options(name, steps, short))

            run(short=True)  # warm-up: kernels, autotuning and caches for this batch shape
            _synchronize(device)
            start = time.perf_counter()
            post = run(short=args.quick)
            _synchronize(device)
            seconds = time.perf_counter() - start
            assert post.samples.device == device and bool(torch.isfinite(post.samples).all()), name
            shown = post.settings.get("steps", steps) if isinstance(post.settings, dict) else steps
            print(f"| {name} | {shown} | {post.nfe} | {batch} | {seconds:.2f} | {batch / seconds:.1f} |", flush=True)
    print(f"total {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
