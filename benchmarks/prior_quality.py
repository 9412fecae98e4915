"""Quality and cost of a shipped diffusion prior (models/<name>/), all on the CPU unless --device says otherwise.

1. Denoising MSE of the network vs the best linear (Wiener) denoiser, per noise level, on held-out test
   phantoms (the Wiener filter from the empirical mean/covariance of 20 000 train phantoms).
2. Unconditional DDIM samples vs held-out phantoms: pixel-value W1 distance, background fraction, lesion-detector
   rate, mean/std; with the same statistics between two held-out sets as the reference spread.
3. Cost of one denoiser forward and one forward+VJP at batch 1, 16, 64 (CPU), and the GPU numbers measured in
   the training run (models/<name>/gpu_timing.json) when present.

Usage: python benchmarks/prior_quality.py [phantom32] [--num-test 256] [--num-samples 128] [--steps 50]
       [--json out.json] [--samples out.safetensors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prior_timing import time_denoiser  # noqa: E402

from bayesinv.data.phantoms import phantom_dataset  # noqa: E402
from bayesinv.priors.hub import build_prior, model_dir, verify_checksums  # noqa: E402
from bayesinv.priors.quality import (compare_denoisers, fit_linear_denoiser, image_statistics,  # noqa: E402
                                     pixel_distance)

NOISE_LEVELS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
LINEAR_TRAIN_SEED = 900_000  # train-split seed of the Wiener filter's images


def evaluate(name: str = "phantom32", *, num_test: int = 256, num_samples: int = 128, steps: int = 50,
             num_linear: int = 20000, timing: bool = True, seed: int = 0) -> dict:
    folder = model_dir(name)
    verify_checksums(folder)
    prior = build_prior(folder)
    size = int(prior.event_shape[-1])
    report: dict = {"name": name, "image_size": size}
    t0 = time.perf_counter()
    linear = fit_linear_denoiser(phantom_dataset("train", num_linear, size, seed=LINEAR_TRAIN_SEED).images)
    test = phantom_dataset("test", num_test, size, seed=seed).images
    rows = compare_denoisers(prior, linear, test, NOISE_LEVELS, generator=torch.Generator().manual_seed(seed))
    report["denoising"] = [r._asdict() for r in rows]
    report["denoising_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = prior.sample_n(num_samples, steps=steps, method="ddim", generator=torch.Generator().manual_seed(seed))
    report["sampling_seconds"] = time.perf_counter() - t0
    held_a = phantom_dataset("test", num_samples, size, seed=seed + 1).images
    held_b = phantom_dataset("test", num_samples, size, seed=seed + 2).images
    report["samples"] = {"num": num_samples, "steps": steps, "method": "ddim",
                         "stats": image_statistics(samples)._asdict(),
                         "heldout_stats": image_statistics(held_a)._asdict(),
                         "heldout2_stats": image_statistics(held_b)._asdict(),
                         "pixel_w1_to_heldout": pixel_distance(samples, held_a),
                         "pixel_w1_heldout_vs_heldout": pixel_distance(held_b, held_a)}
    report["_samples_tensor"] = samples
    if timing:
        report["cpu_timing"] = time_denoiser(str(folder / "config.toml"), "cpu", (1, 16, 64), repeats=3)
        report["cpu_threads"] = torch.get_num_threads()
    gpu = folder / "gpu_timing.json"
    if gpu.exists():
        report["gpu_timing"] = json.loads(gpu.read_text())["rows"]
    return report


def print_report(report: dict) -> None:
    print(f"== {report['name']}: denoising MSE on {report['image_size']}px held-out phantoms (lower is better)")
    print(f"{'sigma':>7} {'t':>5} {'network':>10} {'Wiener':>10} {'ratio':>7} {'paired z':>9}")
    for r in report["denoising"]:
        print(f"{r['noise_level']:7.3f} {r['timestep']:5d} {r['mse_prior']:10.3g} {r['mse_linear']:10.3g} "
              f"{r['mse_prior'] / r['mse_linear']:7.3f} {r['paired_z']:9.1f}")
    s = report["samples"]
    print(f"== {s['num']} DDIM samples ({s['steps']} steps) vs held-out phantoms")
    print(f"{'statistic':>22} {'samples':>9} {'held-out':>9} {'held-out 2':>10}")
    for key in s["stats"]:
        print(f"{key:>22} {s['stats'][key]:9.4f} {s['heldout_stats'][key]:9.4f} {s['heldout2_stats'][key]:10.4f}")
    print(f"{'pixel W1 to held-out':>22} {s['pixel_w1_to_heldout']:9.4f} {0.0:9.4f} "
          f"{s['pixel_w1_heldout_vs_heldout']:10.4f}")
    for key in ("cpu_timing", "gpu_timing"):
        for r in report.get(key, []):
            print(f"{key:>11} batch {r['batch']:3d}: forward {r['forward_ms']:8.2f} ms, "
                  f"forward+VJP {r['forward_vjp_ms']:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="phantom32")
    parser.add_argument("--num-test", type=int, default=256)
    parser.add_argument("--num-samples", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--samples", default=None, help="save the generated samples (safetensors)")
    args = parser.parse_args()
    report = evaluate(args.name, num_test=args.num_test, num_samples=args.num_samples, steps=args.steps,
                      timing=not args.no_timing)
    samples = report.pop("_samples_tensor")
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.samples:
        save_file({"samples": samples.contiguous()}, args.samples)


if __name__ == "__main__":
    main()
