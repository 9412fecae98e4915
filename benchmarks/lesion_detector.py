"""Choose and measure the lesion detector of the hallucination audit on TRUE images.

The detector (:func:`bayesinv.diagnostics.hallucination.lesion_contrast`: disc mean minus annulus median)
is applied to the true phantoms at their audit centres (the lesion centre, or a random body pixel when
there is none). Its threshold is the ``1 - target`` quantile of ``|contrast|`` over the lesion-free
**train** phantoms, rounded up to 0.01, so the false-lesion rate on true images is about ``target``;
the rates are then measured on the train split and, held out, on the calibration split (never on test).
The old detector (disc of radius 1.5 minus the *mean* of the ring [3, 4.5], threshold 0.12) is shown
for comparison.

Usage: ``python benchmarks/lesion_detector.py [--num 2000] [--target 0.05]``
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from bayesinv.data.phantoms import phantom_dataset
from bayesinv.diagnostics.hallucination import LESION_RADIUS, LESION_RING, clopper_pearson, lesion_contrast


def old_contrast(images: torch.Tensor, centers: torch.Tensor, radius: float = 1.5) -> torch.Tensor:
    """The previous detector: mean in a disc minus mean of the ring ``[2r, 3r]`` (for comparison only)."""
    h, w = images.shape[-2:]
    rows = torch.arange(h, dtype=torch.float64)[None, :, None]
    cols = torch.arange(w, dtype=torch.float64)[None, None, :]
    c = centers.double()
    dist = torch.sqrt((rows - c[:, 0, None, None]) ** 2 + (cols - c[:, 1, None, None]) ** 2)
    inner, ring = (dist <= radius).double(), ((dist >= 2 * radius) & (dist <= 3 * radius)).double()
    img = images.double().mean(1)
    return (img * inner).sum((-1, -2)) / inner.sum((-1, -2)) - (img * ring).sum((-1, -2)) / ring.sum((-1, -2))


def rates(score: np.ndarray, has: np.ndarray, threshold: float) -> str:
    false, missed = int((score[~has] > threshold).sum()), int((score[has] <= threshold).sum())
    n0, n1 = int((~has).sum()), int(has.sum())
    lo0, hi0 = clopper_pearson(false, n0)
    lo1, hi1 = clopper_pearson(missed, n1)
    return (f"false-lesion {100 * false / n0:.1f}% [{100 * lo0:.1f}, {100 * hi0:.1f}] ({false}/{n0}), "
            f"missed {100 * missed / n1:.1f}% [{100 * lo1:.1f}, {100 * hi1:.1f}] ({missed}/{n1})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--target", type=float, default=0.05, help="false-lesion rate on true train images")
    args = parser.parse_args()
    splits = {s: phantom_dataset(s, args.num, args.size, lesion_prob=0.5) for s in ("train", "calibration")}
    new = {s: lesion_contrast(b.images, b.audit_centers).abs().numpy() for s, b in splits.items()}
    old = {s: old_contrast(b.images, b.audit_centers).abs().numpy() for s, b in splits.items()}
    has = {s: b.has_lesion.numpy() for s, b in splits.items()}
    q = float(np.quantile(new["train"][~has["train"]], 1 - args.target))
    threshold = math.ceil(q * 100 - 1e-9) / 100
    print(f"detector: disc r={LESION_RADIUS} mean - median of annulus {LESION_RING}; {args.num} phantoms per split, "
          f"lesion_prob 0.5")
    print(f"threshold = {q:.4f} ({1 - args.target:.0%} quantile of |contrast|, lesion-free train) -> {threshold:.2f}")
    for split in splits:
        print(f"[{split}] new detector @ {threshold:.2f}: {rates(new[split], has[split], threshold)}")
        print(f"[{split}] old detector @ 0.12: {rates(old[split], has[split], 0.12)}")


if __name__ == "__main__":
    main()
