"""Deterministic baselines on held-out phantoms: PSNR / SSIM / time per image.

Problems (32x32 test-split phantoms, Gaussian noise sigma_y = 0.05): deblurring (Gaussian, std 1.5 px),
50% random inpainting, 4x Cartesian MRI (real images, operator seed 0: the masks the unrolled
network was trained with). Baselines: minnorm, tikhonov (discrepancy), tv (FISTA), wavelet_l1 (FISTA),
pnp_admm (the phantom32 diffusion prior when ``models/phantom32`` has weights and ``bayesinv.priors.hub``
exists, else the exact Gaussian fitted to 4000 training phantoms, labelled ``pnp_admm[gauss]``),
unrolled (where a model exists: deblur, MRI) and csgm (on the first ``--csgm-images`` images).

The batched solvers run all images at once (``time`` = batch time / images); csgm runs per image.
PSNR and SSIM (scikit-image, ``data_range=1``) are computed on the real part of the estimate.

    python benchmarks/baselines.py                     # 100 images (several minutes on one CPU core)
    python benchmarks/baselines.py --num-images 16 --csgm-images 4
    python benchmarks/baselines.py --fit-rates          # the TV rate n / E[TV(x)] on 1000 train phantoms
    python benchmarks/baselines.py --model-cards        # also rewrite models/{unrolled-*,csgm-vae32}/MODEL_CARD.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bayesinv import Gaussian, InverseProblem
from bayesinv.data.phantoms import phantom_dataset
from bayesinv.operators import make_operator
from bayesinv.samplers.baselines import csgm
from bayesinv.samplers.baselines._real import RealInput
from bayesinv.priors.hub import models_root
from bayesinv.samplers.baselines.nets import load_model
from bayesinv.samplers.baselines.pnp_admm import pnp_admm_solve
from bayesinv.samplers.baselines.tikhonov import discrepancy_weight, tikhonov_solve
from bayesinv.samplers.baselines.tv import TV_RATE_PHANTOM32, total_variation, tv_fista
from bayesinv.samplers.baselines.wavelet import WAVELET_RATE_PHANTOM32, fit_wavelet_rate, wavelet_fista

SIGMA = 0.05
PROBLEMS = {"deblur": ("deblur", {"std": 1.5}), "inpaint": ("inpaint", {"fraction_missing": 0.5}),
            "mri": ("mri", {"acceleration": 4})}
UNROLLED = {"deblur": "unrolled-deblur32", "mri": "unrolled-mri4x32"}


def metrics(estimates: torch.Tensor, truths: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR and SSIM (scikit-image, data_range 1) over images ``(N, 1, H, W)``."""
    psnr, ssim = [], []
    for est, ref in zip(estimates.real.double().numpy(), truths.double().numpy()):
        psnr.append(peak_signal_noise_ratio(ref[0], est[0], data_range=1.0))
        ssim.append(structural_similarity(ref[0], est[0], data_range=1.0))
    return float(np.mean(psnr)), float(np.mean(ssim))


def pnp_prior():
    """The phantom32 diffusion prior if available, else the exact Gaussian fitted to training phantoms."""
    if (models_root() / "phantom32" / "weights.safetensors").exists():
        try:
            from bayesinv.priors.hub import load_prior

            return "pnp_admm", load_prior("phantom32")
        except ImportError:
            pass
    from bayesinv.builders import resolve_prior

    return "pnp_admm[gauss]", resolve_prior("phantom-gaussian", 32)


def run_problem(name: str, truths: torch.Tensor, *, csgm_images: int, csgm_steps: int, prior, prior_label: str,
                seed: int = 0) -> list[tuple[str, float, float, float]]:
    op_name, options = PROBLEMS[name]
    op = make_operator(op_name, (1, 32, 32), seed=0, **options)
    problem = InverseProblem(op, Gaussian(SIGMA), prior)
    y = problem.simulate(truths, generator=torch.Generator().manual_seed(seed))
    real_op = RealInput(op) if op.input_complex else op
    rows = []

    def timed(label, fn, count=len(truths), refs=truths):
        start = time.perf_counter()
        est = fn()
        rows.append((label, *metrics(est, refs), (time.perf_counter() - start) / count))

    timed("minnorm", lambda: op.pinv(y))
    timed("tikhonov", lambda: tikhonov_solve(real_op, y, discrepancy_weight(real_op, y, SIGMA).weight))
    timed("tv", lambda: tv_fista(real_op, y, SIGMA**2 * TV_RATE_PHANTOM32, max_iter=300, tol=1e-4, gap_tol=1e-3).x)
    timed("wavelet_l1", lambda: wavelet_fista(real_op, y, SIGMA**2 * WAVELET_RATE_PHANTOM32, max_iter=300,
                                              tol=1e-4).x)
    timed(prior_label, lambda: pnp_admm_solve(real_op, y, prior, SIGMA, noise_level=2 * SIGMA, max_iter=50,
                                              tol=1e-3).x)
    if name in UNROLLED:
        net, _ = load_model(UNROLLED[name])
        timed("unrolled", lambda: net(y.to(torch.complex64) if y.is_complex() else y.float(), real_op).double())
    k = min(csgm_images, len(truths))
    if k:
        timed("csgm", lambda: torch.cat([csgm(problem, y[i: i + 1], steps=csgm_steps).mean()[None]
                                         for i in range(k)]), count=k, refs=truths[:k])
    return rows


def fit_tv_rate(num: int = 1000) -> float:
    """``n / E[TV(x)]`` over ``num`` train phantoms: the ML rate of the prior ``exp(-rate TV(x))``."""
    images = phantom_dataset("train", num, 32).images.double()
    return float(images[0].numel() / total_variation(images).mean())


MODEL_CARD = """# {name}

{what}

- **Architecture**: {arch} ({params:,} parameters), see `bayesinv/samplers/baselines/nets.py`.
- **Training data**: random-ellipse phantoms, 32x32, train split (`phantom_dataset("train", ...)`, lesion
  prevalence 0.5), a fresh batch of {batch} images per step; never the calibration/test splits.
- **Training**: {steps} AdamW steps ({stopped}), {wall:.0f} s on {device} (torch {torch}); EMA weights shipped.
  Final training loss (mean of the last 200 steps): {loss:.4g}. Config: `config.toml` (reproduce with
  `bayesinv train {target} --config models/{name}/config.toml --device cuda`).
- **Files**: `weights.safetensors` (safetensors, no pickle), `config.toml`, `SHA256SUMS` (checked on every
  load), `loss.csv`, `train_info.json`.

## Measured quality (held-out test phantoms, sigma_y = {sigma})

Produced by `python benchmarks/baselines.py --model-cards` ({num} test images{csgm_note}):

| problem | method | PSNR (dB) | SSIM |
|---|---|---|---|
{rows}

## Intended use and limits

A deterministic point-estimate baseline for the calibration studies: it returns no uncertainty. It is
trained for {scope}; other operators, noise levels, image sizes or image families are out of distribution
(`extras["operator_matches_training"]` flags a different operator for the unrolled network).
"""


def write_cards(results: dict[str, list], num: int, csgm_images: int) -> None:
    import json

    def table(problems, methods):
        lines = []
        for prob in problems:
            for label, psnr, ssim, _ in results[prob]:
                if label in methods:
                    lines.append(f"| {prob} | {label} | {psnr:.2f} | {ssim:.3f} |")
        return "\n".join(lines)

    specs = [("unrolled-mri4x32", "unrolled", ["mri"], "A Neumann network (Gilton et al. 2019) for 4x Cartesian MRI "
              "(real images, `make_operator(\"mri\", (1, 32, 32), seed=0, acceleration=4)`).",
              "4x MRI with that mask at sigma_y = 0.05", "Neumann network, 6 blocks, shared 4-layer CNN"),
             ("unrolled-deblur32", "unrolled", ["deblur"], "A Neumann network (Gilton et al. 2019) for Gaussian "
              "deblurring (std 1.5 px, circular boundary).", "Gaussian blur std 1.5 px at sigma_y = 0.05",
              "Neumann network, 6 blocks, shared 4-layer CNN"),
             ("csgm-vae32", "csgm", list(PROBLEMS), "A convolutional VAE over phantoms; its decoder is the generator "
              "G of the CSGM baseline (Bora et al. 2017).", "32x32 ellipse phantoms (any linear operator)",
              "VAE, latent dimension 64")]
    for name, target, problems, what, scope, arch in specs:
        folder = models_root() / name
        info = json.loads((folder / "train_info.json").read_text())
        methods = {"minnorm", "tikhonov", "tv", target}
        card = MODEL_CARD.format(name=name, what=what, arch=arch, params=info["parameters"], batch=info["batch_size"],
                                 steps=info["steps"], stopped=f"stopped by {info['stopped_by']}",
                                 wall=info["wall_seconds"], device=info["device"], torch=info["torch"],
                                 loss=info["final_loss_mean_last_200"], target=target, sigma=SIGMA, num=num,
                                 csgm_note=f"; csgm on the first {csgm_images}" if target == "csgm" else "",
                                 rows=table(problems, methods), scope=scope)
        (folder / "MODEL_CARD.md").write_text(card)
        print(f"wrote {folder / 'MODEL_CARD.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument("--csgm-images", type=int, default=20, help="csgm is slow on a CPU: run it on this many")
    parser.add_argument("--csgm-steps", type=int, default=300)
    parser.add_argument("--problems", default="deblur,inpaint,mri")
    parser.add_argument("--fit-rates", action="store_true")
    parser.add_argument("--model-cards", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.fit_rates:
        print(f"TV rate n / E[TV(x)] over 1000 train phantoms: {fit_tv_rate():.2f} "
              f"(shipped TV_RATE_PHANTOM32 = {TV_RATE_PHANTOM32})")
        images = phantom_dataset("train", 1000, 32).images.double()
        print(f"Haar (3 levels) Laplace rate k / E||M W x||_1: {fit_wavelet_rate(images, 3):.2f} "
              f"(shipped WAVELET_RATE_PHANTOM32 = {WAVELET_RATE_PHANTOM32})")
        return
    truths = phantom_dataset("test", args.num_images, 32).images.double()
    prior_label, prior = pnp_prior()
    results = {}
    print(f"{args.num_images} test phantoms, sigma_y = {SIGMA}")
    print(f"{'problem':8s} {'baseline':16s} {'PSNR':>7s} {'SSIM':>6s} {'s/image':>8s}")
    for name in args.problems.split(","):
        results[name] = run_problem(name, truths, csgm_images=args.csgm_images, csgm_steps=args.csgm_steps,
                                    prior=prior, prior_label=prior_label)
        for label, psnr, ssim, sec in results[name]:
            print(f"{name:8s} {label:16s} {psnr:7.2f} {ssim:6.3f} {sec:8.4f}", flush=True)
    if args.model_cards:
        write_cards(results, args.num_images, args.csgm_images)


if __name__ == "__main__":
    main()
