"""Traced vs closed-form likelihood gradient: the cost of reading ``grad_x log p(y | x)`` through the Pyro model.

``InverseProblem.grad_log_likelihood`` takes the closed form ``-||y - A x||^2 / (2 sigma^2)`` automatically for
Gaussian noise and a linear operator, and traces the Pyro model otherwise (any noise, a user's own model). This
script times both paths side by side (interleaved, median of many calls, after a warm-up) on a 32x32 Gaussian
deblur (std 1.5 px, sigma_y = 0.05), float32, and prints the times, their ratio and the largest difference of
the two gradients.

    python benchmarks/likelihood_paths.py [--size 32] [--batch 1] [--repeats 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators.blur import Blur


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = (1, args.size, args.size)
    problem = InverseProblem(Blur.gaussian(shape, 1.5), Gaussian(0.05))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, *shape, generator=gen)
    y = problem.simulate(torch.rand(1, *shape, generator=gen), generator=gen)
    times = {"traced": [], "closed_form": []}
    grads = {}
    for method in times:  # warm-up
        for _ in range(10):
            grads[method] = problem.grad_log_likelihood(x, y, method=method)[1]
    for _ in range(args.repeats):
        for method in times:
            start = time.perf_counter()
            problem.grad_log_likelihood(x, y, method=method)
            times[method].append(time.perf_counter() - start)
    traced, closed = (1e3 * statistics.median(times[m]) for m in ("traced", "closed_form"))
    diff = float((grads["traced"] - grads["closed_form"]).abs().max() / grads["closed_form"].abs().max())
    print(f"{args.size}x{args.size} deblur, batch {args.batch}, float32, 1 thread, median of {args.repeats}:")
    print(f"  traced (Pyro model)   {traced:.3f} ms")
    print(f"  closed form           {closed:.3f} ms")
    print(f"  ratio traced/closed   {traced / closed:.1f}x")
    print(f"  max |grad difference| / max |grad| = {diff:.1e}")


if __name__ == "__main__":
    main()
