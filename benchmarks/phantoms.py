"""Phantom generation throughput (images per second) at 32x32 and 64x64. Target: >= 10k/s at 32x32.

Also prints the training phantoms' root mean pixel variance: the scale behind the samplers' default for network
priors (``NETWORK_SCALE_FRACTION = 0.1`` of the pixel range, ``bayesinv/priors/base.py``).

    python benchmarks/phantoms.py
"""

import time

import torch

from bayesinv.data import ellipse_phantoms
from bayesinv.data.phantoms import phantom_dataset


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
    train = phantom_dataset("train", 2000, 32, seed=0, lesion_prob=0.5).images.double().reshape(2000, -1)
    scale = float(train.var(0).mean().sqrt())
    print(f"32x32 train phantoms (2000, lesion_prob=0.5): root mean pixel variance {scale:.3f}")
