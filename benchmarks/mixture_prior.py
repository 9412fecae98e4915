"""Cost of the exact mixture denoiser (forward + VJP, what DPS and SMC need) on the MCGdiff testbed prior.

Usage: python benchmarks/mixture_prior.py [--batch 1920] [--dims 8 80] [--repeats 5]

The testbed's 25 components are isotropic (``Sigma_k = I``), so ``GaussianMixturePrior`` takes its matrix-product
path, which never forms the ``(B, K, d)`` residuals. Timed side by side in one run against the element-wise
diagonal path it replaces (the same prior with the shortcut switched off) and the general eigenbasis path (the same
mixture given as dense ``I`` matrices); the outputs agree to 1e-10 (``tests/priors/test_mixture.py``). The default batch is the d = 80 SMC test's: 120 samples x 16 particles.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bayesinv.priors import GaussianMixturePrior, grid_mixture


def time_denoise_vjp(prior: GaussianMixturePrior, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one denoiser call plus its VJP at t = 300."""
    times = []
    for _ in range(repeats):
        xg = x.clone().requires_grad_(True)
        start = time.perf_counter()
        torch.autograd.grad(prior.denoise(xg, 300).sum(), xg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1920)
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 80])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch}, 25 components, denoise + VJP at t = 300")
    print("| d | isotropic path (ms) | diagonal path (ms) | eigenbasis path (ms) | diagonal / isotropic |")
    print("|---|---|---|---|---|")
    for dim in args.dims:
        fast = grid_mixture(dim, generator=torch.Generator().manual_seed(0))
        diagonal = grid_mixture(dim, generator=torch.Generator().manual_seed(0))
        diagonal._iso_var = None  # the element-wise (B, K, d) path that isotropic priors took before
        dense = GaussianMixturePrior(fast.weights, fast.means, fast.covariance_matrices)
        x = fast.sample_n(args.batch, generator=torch.Generator().manual_seed(1))
        t_fast, t_diag, t_dense = (time_denoise_vjp(p, x, args.repeats) for p in (fast, diagonal, dense))
        print(f"| {dim} | {1e3 * t_fast:.1f} | {1e3 * t_diag:.1f} | {1e3 * t_dense:.1f} | {t_diag / t_fast:.1f}x |",
              flush=True)


if __name__ == "__main__":
    main()
