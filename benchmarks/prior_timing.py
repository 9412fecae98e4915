"""Cost of one denoiser forward and one forward+VJP (what DPS needs) of a prior's U-Net, per batch size.

Usage: python benchmarks/prior_timing.py models/phantom32/config.toml [--device cuda] [--batches 1 16 64]
Prints a table and (with --json PATH) writes it as JSON. Weights do not change the cost, so a freshly
initialised network of the config's architecture is timed, in both weight layouts side by side (contiguous NCHW
and channels-last, which ``inference_layout`` picks on the CPU), with their ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from bayesinv.priors.networks.denoiser import Denoiser
from bayesinv.priors.networks.config import build_network, build_schedule, read_config


LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def time_denoiser(config: str, device: str = "cpu", batches=(1, 16, 64), repeats: int = 5) -> list[dict]:
    """Median wall time (ms) of ``D(x_t, t)`` and of ``D`` plus ``vjp`` at each batch size."""
    cfg = read_config(config)
    denoiser = Denoiser(build_network(cfg), build_schedule(cfg), cfg["network"].get("parametrisation", "eps"))
    denoiser = denoiser.to(device).eval().requires_grad_(False)
    size = int(cfg["data"]["image_size"])
    rows = []
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for batch, layout in itertools.product(batches, LAYOUTS):
        denoiser.network.to(memory_format=LAYOUTS[layout])
        x = torch.randn(batch, 1, size, size, device=device)
        t = torch.full((batch,), 500)

        def forward():
            with torch.no_grad():
                denoiser(x, t)

        def forward_vjp():
            xg = x.clone().requires_grad_(True)
            out = denoiser(xg, t)
            torch.autograd.grad(out, xg, torch.ones_like(out))

        row = {"device": str(device), "batch": batch, "layout": layout}
        for label, fn in (("forward_ms", forward), ("forward_vjp_ms", forward_vjp)):
            fn()
            sync()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(1000 * (time.perf_counter() - t0))
            row[label] = sorted(times)[len(times) // 2]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = time_denoiser(args.config, args.device, args.batches, args.repeats)
    print(f"{'device':>8} {'batch':>6} {'layout':>14} {'forward ms':>11} {'fwd+VJP ms':>11}")
    for r in rows:
        print(f"{r['device']:>8} {r['batch']:>6} {r['layout']:>14} {r['forward_ms']:>11.2f} "
              f"{r['forward_vjp_ms']:>11.2f}")
    for plain, fast in zip(rows[::2], rows[1::2]):
        print(f"batch {plain['batch']}: contiguous / channels-last = {plain['forward_ms'] / fast['forward_ms']:.2f} "
              f"(forward), {plain['forward_vjp_ms'] / fast['forward_vjp_ms']:.2f} (forward + VJP)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": args.config, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
