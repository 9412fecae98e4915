"""Dirac-PO / Dirac-DO against diffusion and classical baselines on phantom32 deblurring and inpainting.

For each problem (Gaussian blur std 1.5 px, 13x13 circular kernel; 50% random missing pixels, fixed mask
seed 0; sigma_y = 0.05) and each method, one reconstruction per held-out test phantom
(``phantom_dataset("test", N, 32, seed=0)``) gives

* PSNR and SSIM (``skimage.metrics``, data range 1) of the reconstruction clipped to ``[0, 1]``, mean over images;
* ``SW-patch``: the sliced Wasserstein distance (``bayesinv.diagnostics.distances.sliced_wasserstein``, 256
  directions) between the 8x8 patches (stride 4) of the reconstructions and those of *other* clean held-out
  phantoms (``seed=1``). It is a distribution distance, a stand-in for FID/LPIPS whose pretrained weights are
  not available offline: blur and noise move patch statistics away from clean ones even when the PSNR is
  high. ``floor`` is the distance of the true images themselves (what a perfect reconstruction gets); the
  spread of the distance between independent clean sets of the same size is printed first: differences
  smaller than a few of its sd are not resolved at that number of images;
* NFE (network evaluations per reconstruction) and the mean wall time per image on this machine.

Methods: ``dirac_po``/``dirac_do`` (the shipped ``models/dirac-*``), ``dps``, ``ddrm`` (``SAMPLERS``, with
the ``phantom32`` diffusion prior if ``models/phantom32`` holds weights), ``pnp_admm``, ``tv``, ``minnorm``
(``BASELINES``). Methods that cannot run (no prior weights) are listed as skipped.

    python benchmarks/dirac_table.py                       # 100 images, every method (hours on a CPU)
    python benchmarks/dirac_table.py --num-images 16 --methods dirac_po dirac_do tv minnorm
    python benchmarks/dirac_table.py --dps-steps 100 --problems inpaint   # DPS at 100 steps (zeta' tuned there)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bayesinv import Gaussian, InverseProblem
from bayesinv.data.phantoms import phantom_dataset
from bayesinv.diagnostics.distances import sliced_wasserstein
from bayesinv.operators.registry import make_operator
from bayesinv.samplers import SAMPLERS

PROBLEMS = {"deblur": ("deblur", "dirac-blur32"), "inpaint": ("inpaint", "dirac-inpaint32")}
METHODS = ("dirac_po", "dirac_do", "dps", "ddrm", "pnp_admm", "tv", "minnorm")
NEEDS_PRIOR = ("dps", "ddrm", "pnp_admm")


def patches(images: torch.Tensor, size: int = 8, stride: int = 4) -> torch.Tensor:
    """All ``size x size`` patches with ``stride`` of ``(N, 1, H, W)`` images: ``(N * P, size * size)``."""
    out = images.unfold(2, size, stride).unfold(3, size, stride)  # (N, 1, nh, nw, size, size)
    return out.reshape(-1, size * size)


def floor_spread(num_images: int, repeats: int = 5) -> tuple[float, float]:
    """Mean and sd of the SW-patch distance between independent pairs of clean held-out sets of ``num_images``:
    the noise level below which differences between methods are not resolved at this sample size."""
    values = []
    for r in range(repeats):
        a = phantom_dataset("test", num_images, 32, seed=10 + 2 * r).images.double()
        b = phantom_dataset("test", num_images, 32, seed=11 + 2 * r).images.double()
        values.append(float(sliced_wasserstein(patches(a), patches(b), generator=torch.Generator().manual_seed(123))))
    return float(np.mean(values)), float(np.std(values, ddof=1))


def load_diffusion_prior():
    try:
        from bayesinv.priors.hub import load_prior

        return load_prior("phantom32"), ""
    except Exception as err:  # missing weights or module: the diffusion baselines are skipped
        return None, f"{type(err).__name__}: {err}"


def reconstruct(method: str, problem: InverseProblem, y: torch.Tensor, dirac_model: str, seed: int, dps_steps):
    g = torch.Generator().manual_seed(seed)
    if method in ("dirac_po", "dirac_do"):
        return SAMPLERS["dirac"](problem, y, num_samples=1, model=dirac_model, variant=method[-2:], generator=g,
                                 progress=False)
    if method == "dps":
        return SAMPLERS["dps"](problem, y, num_samples=1, steps=dps_steps, generator=g, progress=False)
    if method == "ddrm":
        return SAMPLERS["ddrm"](problem, y, num_samples=1, generator=g, progress=False)
    from bayesinv.samplers.baselines import BASELINES

    return BASELINES[method](problem, y)


def run(problem_name: str, methods, num_images: int, dps_steps, prior, seed: int = 0, dirac_model: str | None = None):
    """Rows ``(method, PSNR, SSIM, SW-patch, NFE, s/image)`` and the SW-patch floor (``dirac_model``: a model
    name or folder replacing the shipped one)."""
    op_name, shipped = PROBLEMS[problem_name]
    dirac_model = dirac_model or shipped
    op = make_operator(op_name, (1, 32, 32))
    problem = InverseProblem(op, Gaussian(0.05), prior)
    truth = phantom_dataset("test", num_images, 32, seed=0).images.double()
    reference = phantom_dataset("test", num_images, 32, seed=1).images.double()
    floor = float(sliced_wasserstein(patches(truth), patches(reference), generator=torch.Generator().manual_seed(123)))
    rows = []
    for method in methods:
        recs, nfe, wall = [], 0, 0.0
        for i in range(num_images):
            y = problem.simulate(truth[i : i + 1], generator=torch.Generator().manual_seed(10_000 + i))
            start = time.perf_counter()
            post = reconstruct(method, problem, y, dirac_model, seed + i, dps_steps)
            wall += time.perf_counter() - start
            recs.append(post.samples[0, 0].to(torch.float64))
            nfe = post.nfe
        recs = torch.stack(recs)
        x_np, r_np = truth[:, 0].numpy(), recs[:, 0].clamp(0, 1).numpy()
        psnr = np.mean([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(x_np, r_np)])
        ssim = np.mean([structural_similarity(a, b, data_range=1.0) for a, b in zip(x_np, r_np)])
        sw = float(sliced_wasserstein(patches(recs.clamp(0, 1)), patches(reference),
                                      generator=torch.Generator().manual_seed(123)))
        rows.append((method, psnr, ssim, sw, nfe, wall / num_images))
        print(f"  [{problem_name}] {method}: PSNR {psnr:.2f} SSIM {ssim:.3f} SW-patch {sw:.4f} NFE {nfe} "
              f"{wall / num_images:.2f} s/img", flush=True)
    return rows, floor


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=100, help="held-out test phantoms (default 100)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--dps-steps", type=int, default=None, help="DPS steps (default: the sampler's, 1000)")
    args = parser.parse_args(argv)
    prior, why = (load_diffusion_prior() if any(m in NEEDS_PRIOR for m in args.methods) else (None, ""))
    methods = [m for m in args.methods if prior is not None or m not in NEEDS_PRIOR]
    skipped = [m for m in args.methods if m not in methods]
    spread = floor_spread(args.num_images)
    print(f"SW-patch between independent clean sets of {args.num_images}: {spread[0]:.4f} +- {spread[1]:.4f} (5 pairs)")
    for name in args.problems:
        rows, floor = run(name, methods, args.num_images, args.dps_steps, prior)
        print(f"\n### phantom32 {name}, sigma_y = 0.05, {args.num_images} held-out images\n")
        print("| method | PSNR (dB) | SSIM | SW-patch (floor %.4f) | NFE | s / image |" % floor)
        print("|---|---|---|---|---|---|")
        for method, psnr, ssim, sw, nfe, wall in rows:
            print(f"| {method} | {psnr:.2f} | {ssim:.3f} | {sw:.4f} | {nfe} | {wall:.2f} |")
        if skipped:
            print(f"\nskipped (no phantom32 prior: {why}): {', '.join(skipped)}")
        diffusion = [r for r in rows if r[0] in ("dirac_po", "dirac_do", "dps", "ddrm")]
        if diffusion:
            best_psnr = max(rows, key=lambda r: r[1])[0]
            best_ssim = max(rows, key=lambda r: r[2])[0]
            best_sw = min(diffusion, key=lambda r: r[3])[0]
            print(f"\nbest PSNR: {best_psnr}; best SSIM: {best_ssim}; best SW-patch among diffusion methods: {best_sw}")


if __name__ == "__main__":
    main()
