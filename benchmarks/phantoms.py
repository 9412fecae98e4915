"""Phantom generation throughput (images per second) at 32x32 and 64x64. Target: >= 10k/s at 32x32.

    python benchmarks/phantoms.py
"""

import time

import torch

from bayesinv.data import ellipse_phantoms


def rate(size: int, num: int = 10_000, repeats: int = 3) -> float:
    g = torch.Generator().manual_seed(0)
    ellipse_phantoms(64, size, generator=g)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ellipse_phantoms(num, size, generator=g, lesion_prob=0.5)
        best = min(best, time.perf_counter() - t)
    return num / best


if __name__ == "__main__":
    print(f"torch threads: {torch.get_num_threads()}")
    for size in (32, 64):
        print(f"{size}x{size}: {rate(size):,.0f} images/s (best of 3, 10k images, lesion_prob=0.5)")
