"""Dirac ablation: the incremental-reconstruction loss against the plain x0 loss, at an equal training budget.

Trains one Dirac network per ``--lookaheads`` value on the shipped config (``models/dirac-<kind>32/config.toml``)
with a smaller batch and an equal number of steps (CPU-sized; the shipped models had 4.6 minutes of an H200), then
evaluates Dirac-PO and Dirac-DO of each on held-out test phantoms with ``benchmarks/dirac_table.py``'s metrics
(PSNR, SSIM, SW-patch). The loss (``bayesinv.training.dirac``) is

    E w(t) || A_tau Phi(y_t, t) - A_tau x0 ||^2,    tau = max(t - lookahead, 0),

so ``lookahead = 1`` is the x0 loss and a small look-ahead is the paper's incremental reconstruction
(``A_{t - Delta t}``). The paper's claim: the incremental loss favours perception (Dirac-PO), the x0 loss
distortion (Dirac-DO).

    python benchmarks/dirac_ablation.py --out dirac-ablation --lookaheads 1.0 --steps 1500 --images 0  # one process
    python benchmarks/dirac_ablation.py --out dirac-ablation --lookaheads 0.1 --steps 1500 --images 0  # another
    python benchmarks/dirac_ablation.py --out dirac-ablation --lookaheads 1.0 0.1 --evaluate-only --images 128

The README's numbers: deblurring 1500 steps of batch 32 per network (about 58 minutes each, one thread, two at
a time on 2 cores), 128 test images; inpainting 1000 steps (24 minutes each), 64 test images. A run stopped by
--minutes resumes from its checkpoint with a larger --steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bayesinv.priors.hub import models_root
from bayesinv.training.dirac import read_config, train_from_config
from dirac_table import floor_spread, run

MODELS = {"blur": ("deblur", "dirac-blur32"), "inpaint": ("inpaint", "dirac-inpaint32")}


def folder(out: Path, kind: str, lookahead: float) -> Path:
    return out / f"{kind}-lookahead-{lookahead:g}"


def train(kind: str, lookahead: float, args) -> None:
    cfg = read_config(models_root() / MODELS[kind][1] / "config.toml")
    cfg["name"] = f"dirac-{kind}32-lookahead-{lookahead:g}"
    cfg["training"].update(lookahead=lookahead, batch_size=args.batch_size, max_steps=args.steps,
                           max_minutes=args.minutes, warmup_steps=100, checkpoint_every=250, prefetch=1)
    weights = train_from_config(cfg, out_dir=folder(args.out, kind, lookahead), progress=False)
    info = json.loads((weights.parent / "train_info.json").read_text())
    print(f"trained lookahead {lookahead:g}: {info['steps']} steps of batch {args.batch_size} in "
          f"{info['wall_seconds']} s, mean loss over the last 500 steps {info['final_loss_mean_last_500']:.3e}",
          flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the trained networks")
    parser.add_argument("--degradation", choices=list(MODELS), default="blur")
    parser.add_argument("--lookaheads", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--steps", type=int, default=500, help="training steps per network (the equal budget)")
    parser.add_argument("--minutes", type=float, default=600.0, help="wall-clock cap per network")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=32, help="held-out test phantoms for the evaluation (0: none)")
    parser.add_argument("--evaluate-only", action="store_true", help="skip training (networks already in --out)")
    args = parser.parse_args(argv)
    kind = args.degradation
    if not args.evaluate_only:
        for lookahead in args.lookaheads:
            train(kind, lookahead, args)
    if args.images <= 0:  # train only
        return
    spread = floor_spread(args.images)
    print(f"\n### Dirac {kind}: loss ablation, {args.images} held-out images (SW-patch between clean sets "
          f"{spread[0]:.4f} +- {spread[1]:.4f})\n")
    print("| look-ahead | variant | PSNR (dB) | SSIM | SW-patch | NFE | s / image |")
    print("|---|---|---|---|---|---|---|")
    for lookahead in args.lookaheads:
        rows, floor = run(MODELS[kind][0], ["dirac_po", "dirac_do"], args.images, None, None,
                          dirac_model=str(folder(args.out, kind, lookahead)))
        for method, psnr, ssim, sw, nfe, wall in rows:
            print(f"| {lookahead:g} | {method} | {psnr:.2f} | {ssim:.3f} | {sw:.4f} (floor {floor:.4f}) | {nfe} | "
                  f"{wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
