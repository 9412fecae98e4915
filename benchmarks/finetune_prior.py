"""Fine-tune the shipped phantom32 prior on the CPU with a lesion-emphasising stream, resumable, with snapshots.

The shipped network (EMA weights of ``models/phantom32/weights.safetensors``) is the starting point of both the
trained weights and their EMA. Each step draws a fresh, *lesion-balanced* batch of train-split phantoms: half
with a lesion and half without (exactly, not by chance), so the stream has the data's prevalence 0.5 and the
denoising optimum is unchanged; seeds ``data_seed + 2 step`` and ``data_seed + 2 step + 1`` (both below the
calibration split's offset, and disjoint from the 0..7006 of the original run with the default ``data_seed``).

Loss: the eps-MSE of :func:`bayesinv.training.prior.diffusion_loss`, with the timestep drawn from a mixture:
with probability ``low_fraction`` uniform on ``[0, low_max)`` (the noise levels where a 1-2 px lesion is
decided and drawn: ``sigma/alpha`` up to ~1.5 at t = 400), otherwise uniform on ``[0, 1000)``. Re-weighting the
timesteps does not move the minimiser at any single t (it is still ``E[eps | x_t]``), so the prior stays a
prior over the same data. An optional ``--lesion-weight w`` multiplies the squared error on lesion pixels by
``w`` (this does bias the optimum towards lesions; off by default); ``--lesion-tmin t0`` applies it only at
timesteps ``t >= t0``, so that the bias stays above chosen noise levels (t0 = 260: ``sigma/alpha > 1``, above
every level of the denoising-MSE bar, where a 1-2 px lesion of contrast ~0.35 is still at or below the noise).

The learning rate restarts with a linear warm-up to ``--lr``. ``--lr-final`` and ``--lesion-weight-final`` anneal
the learning rate and the lesion weight linearly in the step, from their start values at step 0 to the final ones
at ``--steps``; the value is held constant over each segment of ``--snapshot-every`` steps (the one at the segment's
first step, :func:`annealed`), so a resumed run follows the same schedule. The loop is
:func:`bayesinv.training.loop.train_loop` (AdamW, grad clip, EMA, safetensors checkpoint, loss.csv),
run in segments of ``--snapshot-every`` steps; after each segment the EMA weights are written to
``<out>/ema_step<k>.safetensors`` (and the raw weights to ``raw_step<k>.safetensors``). Rerunning the same
command resumes from ``<out>/checkpoint.safetensors``.

Usage (the run of benchmarks/results/prior_lesions/README.md):
    OMP_NUM_THREADS=1 python benchmarks/finetune_prior.py --out models/phantom32/checkpoints/ft1 \\
        --batch 32 --lr 1e-4 --steps 4000 --snapshot-every 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open

from bayesinv._validation import check_device
from bayesinv.data.phantoms import SPLIT_SEEDS, phantom_dataset
from bayesinv.priors.networks import Denoiser, load_weights, save_weights
from bayesinv.training import train_loop
from bayesinv.training.loop import CHECKPOINT_NAME
from bayesinv.priors.networks.denoiser import training_target
from bayesinv.priors.networks.config import build_network, build_schedule, read_config

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "phantom32"
REFERENCE_LESION_PIXELS = 9.0  # a disc of radius 1.5 (the data's radii give 5, 9 or 13 pixels)


def balanced_batches(batch_size: int, image_size: int, data_seed: int):
    """``step -> (images, lesion_masks)``: ``batch_size // 2`` phantoms with a lesion, the rest without."""
    half = batch_size // 2

    def sample(step: int):
        seed = data_seed + 2 * step
        if seed + 1 >= SPLIT_SEEDS["calibration"]:
            raise ValueError(f"train seed {seed + 1} would reach the calibration split")
        with_lesion = phantom_dataset("train", half, image_size, seed=seed, lesion_prob=1.0)
        without = phantom_dataset("train", batch_size - half, image_size, seed=seed + 1, lesion_prob=0.0)
        return (torch.cat([with_lesion.images, without.images]),
                torch.cat([with_lesion.lesion_masks, without.lesion_masks]).float())

    return sample


def annealed(start: float, final: float | None, step: int, total: int) -> float:
    """Linear anneal from ``start`` (step 0) to ``final`` (step ``total`` and after); ``final=None``: constant.

    >>> annealed(3.0, 1.0, 150, 600), annealed(6e-5, None, 150, 600), annealed(3.0, 1.0, 900, 600)
    (2.5, 6e-05, 1.0)
    """
    if final is None:
        return start
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    return start + (final - start) * min(step, total) / total


def make_loss(low_fraction: float, low_max: int, lesion_weight: float, lesion_tmin: int = 0,
              per_lesion: bool = False):
    """The loss of the module docstring: ``(denoiser, (x0, masks), generator) -> scalar``; the lesion weight
    applies only at timesteps ``t >= lesion_tmin``. ``per_lesion``: the extra weight ``lesion_weight - 1`` is
    shared by a lesion's pixels, scaled by ``REFERENCE_LESION_PIXELS / (its pixel count)``, so every lesion adds
    the same weight to the loss whatever its size (per pixel, a 5-pixel lesion weighs 5/13 of a 13-pixel one)."""

    def loss_fn(denoiser: Denoiser, batch, generator: torch.Generator) -> torch.Tensor:
        x0, masks = batch
        n, steps, on = x0.shape[0], denoiser.schedule.num_steps, generator.device  # draws on the generator's device
        low = torch.rand(n, generator=generator, device=on) < low_fraction
        t = torch.where(low, torch.randint(0, low_max, (n,), generator=generator, device=on),
                        torch.randint(0, steps, (n,), generator=generator, device=on)).cpu()
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=on).to(x0.device)
        alpha, sigma = denoiser.schedule.coefficients(t, x0)
        x_t = alpha * x0 + sigma * eps
        target = training_target(denoiser.parametrisation, x0, eps, alpha, sigma)
        err = (denoiser.raw(x_t, t) - target) ** 2
        if lesion_weight != 1.0:
            gate = (t >= lesion_tmin).to(err).view(-1, *([1] * (err.dim() - 1)))
            extra = masks
            if per_lesion:
                count = masks.flatten(1).sum(dim=1).clamp(min=1).view(-1, *([1] * (masks.dim() - 1)))
                extra = masks * (REFERENCE_LESION_PIXELS / count)
            err = err * (1 + (lesion_weight - 1) * gate * extra)
        return err.mean()

    return loss_fn


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="run folder (checkpoint, loss.csv, snapshots)")
    parser.add_argument("--init", default=str(MODEL / "weights.safetensors"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--snapshot-every", type=int, default=200)
    parser.add_argument("--low-fraction", type=float, default=0.75)
    parser.add_argument("--low-max", type=int, default=400)
    parser.add_argument("--lesion-weight", type=float, default=1.0)
    parser.add_argument("--lr-final", type=float, default=None,
                        help="anneal the lr linearly to this at --steps (per segment; default: constant)")
    parser.add_argument("--lesion-weight-final", type=float, default=None,
                        help="anneal the lesion weight linearly to this at --steps (per segment; default: constant)")
    parser.add_argument("--lesion-tmin", type=int, default=0,
                        help="apply the lesion weight only at timesteps t >= this (t = 260: sigma/alpha > 1, above "
                             "every noise level of the MSE bar)")
    parser.add_argument("--per-lesion", action="store_true",
                        help="share the lesion weight over each lesion's pixels (every lesion weighs the same, "
                             "small ones as much as large ones)")
    parser.add_argument("--data-seed", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where the network trains (cuda: see prior_fix_device.sh)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after this much wall time in this call (the EMA at the step reached is saved)")
    parser.add_argument("--prefetch", type=int, default=1, help="batches drawn ahead in threads")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    check_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2) + "\n")
    cfg = read_config(MODEL / "config.toml")
    network = build_network(cfg)
    load_weights(network, args.init)
    denoiser = Denoiser(network, build_schedule(cfg), cfg["network"].get("parametrisation", "eps"))
    batches = balanced_batches(args.batch, int(cfg["data"]["image_size"]), args.data_seed)
    done, deadline = 0, None if args.max_minutes is None else time.perf_counter() + 60 * args.max_minutes
    if (out / CHECKPOINT_NAME).exists():  # resume: segments continue from the checkpoint's step
        with safe_open(str(out / CHECKPOINT_NAME), framework="pt") as handle:
            done = int((handle.metadata() or {})["step"])
    while done < args.steps:
        target = min(args.steps, (done // args.snapshot_every + 1) * args.snapshot_every)
        t0 = time.perf_counter()
        lr = annealed(args.lr, args.lr_final, done, args.steps)
        lesion_weight = annealed(args.lesion_weight, args.lesion_weight_final, done, args.steps)
        loss_fn = make_loss(args.low_fraction, args.low_max, lesion_weight, args.lesion_tmin, args.per_lesion)
        left = None if deadline is None else max(0.0, (deadline - time.perf_counter()) / 60)
        result = train_loop(denoiser, loss_fn, batches, steps=target, lr=lr, ema_decay=args.ema, seed=args.seed,
                            device=args.device, checkpoint_dir=out, checkpoint_every=10**9, resume=True,
                            grad_clip=1.0, warmup_steps=args.warmup, progress=False, prefetch=args.prefetch,
                            max_minutes=left)
        done = result.steps
        save_weights(result.ema.network, out / f"ema_step{done}.safetensors", {"steps": done})
        save_weights(result.model.network, out / f"raw_step{done}.safetensors", {"steps": done})
        recent = result.losses[-args.snapshot_every:]
        print(f"{time.strftime('%H:%M:%S')} step {done}: mean loss of the segment {sum(recent) / len(recent):.5f}, "
              f"{time.perf_counter() - t0:.0f} s for the segment (lr {lr:.3g}, lesion weight {lesion_weight:.3g})",
              flush=True)
        if result.stopped_by == "max_minutes":
            print(f"stopped by --max-minutes {args.max_minutes} at step {done} of {args.steps}", flush=True)
            break


if __name__ == "__main__":
    main()
