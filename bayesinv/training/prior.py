r"""Training a diffusion prior by denoising score matching on generated phantoms.

The loss (Ho et al. 2020, eq. 14; Vincent 2011) for a network ``F`` of parametrisation ``p``:

    L = E_{x0 ~ data, t ~ U{0..T-1}, eps ~ N(0, I)} || F(c_in x_t, t) - target_p(x0, eps, t) ||^2,
    x_t = alpha_t x0 + sigma_t eps,

with ``target_eps = eps`` (the "simple" DDPM loss), ``target_x0 = x0``, ``target_v = alpha eps - sigma x0``.
Its minimiser gives the MMSE denoiser, hence the score (Tweedie).

Data: every step draws a fresh batch of random-ellipse phantoms from the *train* split, with the step as
seed (``phantom_dataset("train", batch_size, size, seed=data_seed + step, lesion_prob=...)``), lesions inserted
with probability ``lesion_prob`` (0.5 for the shipped priors); see :func:`~bayesinv.training.run.phantom_batches`.
The loop (AdamW, EMA, checkpoints, resumption) is :func:`~bayesinv.training.loop.train_loop`.

``train_from_config`` reads a ``config.toml`` (see ``models/phantom32/config.toml``; the network and schedule
are built by :mod:`bayesinv.priors.networks.config`, as when the prior is loaded) and writes into its folder
(or ``out_dir``): ``weights.safetensors`` (EMA weights of the network), ``loss.csv``, ``train_info.json``,
``SHA256SUMS``; checkpoints go to ``checkpoints/`` there.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from bayesinv.priors.networks.config import build_network, build_schedule, read_config
from bayesinv.priors.networks.denoiser import Denoiser, training_target
from bayesinv.priors.networks.unet import count_parameters
from bayesinv.training.run import config_batches, finish_run, mean_tail, output_folder, train_from_table

__all__ = ["diffusion_loss", "read_config", "train_from_config"]


def diffusion_loss(denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The denoising loss of the module docstring for one batch ``x0: (B, C, H, W)``, ``t`` uniform."""
    schedule = denoiser.schedule
    t = torch.randint(0, schedule.num_steps, (x0.shape[0],), generator=generator, device=generator.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    t = t.cpu()
    alpha, sigma = schedule.coefficients(t, x0)
    x_t = alpha * x0 + sigma * eps
    target = training_target(denoiser.parametrisation, x0, eps, alpha, sigma)
    return F.mse_loss(denoiser.raw(x_t, t), target)


def train_from_config(config: str | Path | dict, out_dir: str | Path | None = None, device: str = "cpu",
                      resume: bool = True, target: str = "prior", *, max_steps: int | None = None,
                      max_minutes: float | None = None, progress: bool = True) -> Path:
    """Train the prior a config describes; return the path of ``weights.safetensors``.

    ``max_steps``/``max_minutes`` override ``[training]`` (e.g. a short smoke run). This is what
    ``bayesinv train prior --config models/phantom32/config.toml --device cuda`` calls.
    """
    if target != "prior":
        raise ValueError(f"bayesinv.training.prior trains target 'prior', got {target!r}")
    cfg = read_config(config)
    out = output_folder(config, out_dir, cfg)
    train = cfg["training"]
    denoiser = Denoiser(build_network(cfg), build_schedule(cfg), cfg["network"].get("parametrisation", "eps"))
    result = train_from_table(denoiser, diffusion_loss, config_batches(cfg), train, device=device,
                              checkpoint_dir=out / "checkpoints", resume=resume, max_steps=max_steps,
                              max_minutes=max_minutes, progress=progress)
    info = {"parameters": count_parameters(denoiser.network), "batch_size": int(train["batch_size"]),
            "final_loss_mean_last_500": mean_tail(result.losses, 500)}
    return finish_run(out, result.ema.network, result, cfg, device=device, info=info)
