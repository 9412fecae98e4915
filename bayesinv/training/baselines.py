r"""Training the learned baselines on generated phantoms: the Neumann network and the CSGM VAE.

* ``unrolled`` (Gilton et al. 2019): for each step draw fresh train-split phantoms ``x``, simulate
  ``y = A x + sigma_y n`` with the config's operator (``[operator] name, seed, options`` through
  :func:`~bayesinv.operators.make_operator`) and noise ``[noise] sigma``, and minimise
  ``||NN(y; A) - x||^2`` (mean squared error, the paper's training loss).
* ``csgm`` (a VAE for Bora et al. 2017): maximise the ELBO with a Gaussian decoder of std
  ``[training] recon_std``: loss ``= ||G(z) - x||^2 / (2 recon_std^2) + KL(q(z|x) || N(0, I))`` per image.

Both use the shared loop :func:`~bayesinv.training.loop.train_loop` (AdamW, EMA, safetensors
checkpoints, resumption, deterministic per-step randomness) and its train-split batches
(:func:`~bayesinv.training.run.phantom_batches`); the networks and their training operator are in
:mod:`bayesinv.samplers.baselines.nets`, where inference loads them. ``train_from_config`` writes
``weights.safetensors`` (EMA weights), ``loss.csv``, ``train_info.json`` and ``SHA256SUMS`` next to the config
(or in ``out_dir``).
This is what ``bayesinv train unrolled|csgm --config models/<name>/config.toml --device cuda`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from bayesinv.noise import as_real_view
from bayesinv.priors.networks.weights import read_toml_config
from bayesinv.samplers.baselines._real import RealInput
from bayesinv.samplers.baselines.nets import VAE, NeumannNetwork, build_network, training_operator
from bayesinv.training.run import config_batches, finish_run, mean_tail, output_folder, train_from_table

__all__ = ["train_from_config", "read_config", "simulate", "unrolled_loss", "vae_loss"]


def read_config(config: str | Path | dict) -> dict[str, Any]:
    """Read a learned-baseline config TOML (or pass a dict through), checking its sections."""
    cfg = read_toml_config(config, (), example="models/unrolled-mri4x32/config.toml")
    needed = {"unrolled": ("data", "operator", "noise", "network", "training"), "vae": ("data", "network", "training")}
    if cfg.get("kind") not in needed:
        raise ValueError(f"config kind must be 'unrolled' or 'vae', got {cfg.get('kind')!r}")
    return read_toml_config(cfg, needed[cfg["kind"]], example="models/unrolled-mri4x32/config.toml")


def simulate(operator, x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``y = A x + sigma n`` (complex measurements get independent real and imaginary noise)."""
    mean = operator(x)
    view = as_real_view(mean)
    noise = torch.randn(view.shape, generator=generator, device=generator.device, dtype=view.dtype).to(view.device)
    noisy = view + sigma * noise
    return torch.view_as_complex(noisy.contiguous()) if mean.is_complex() else noisy


def unrolled_loss(operator, sigma: float):
    """``(model, x, generator) -> ||NN(A x + sigma n; A) - x||^2`` (mean over pixels)."""

    def loss(model: NeumannNetwork, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        y = simulate(operator, x, sigma, generator)
        return F.mse_loss(model(y, operator), x)

    return loss


def vae_loss(recon_std: float):
    """``(model, x, generator) -> mean over images of ||G(z) - x||^2 / (2 s^2) + KL`` (the negative ELBO)."""

    def loss(model: VAE, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        recon, mean, logvar = model(x, generator)
        nll = ((recon - x) ** 2).flatten(1).sum(1) / (2 * recon_std**2)
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
        return (nll + kl).mean()

    return loss


def _real_operator(operator):
    """The operator acting on real images (complex-input operators are restricted to real images)."""
    return RealInput(operator) if operator.input_complex else operator


def train_from_config(config: str | Path | dict, out_dir: str | Path | None = None, device: str = "cpu",
                      resume: bool = True, target: str | None = None, *, max_steps: int | None = None,
                      max_minutes: float | None = None, progress: bool = True) -> Path:
    """Train the learned baseline a config describes; return the path of ``weights.safetensors``.

    ``target`` (``"unrolled"`` or ``"csgm"``, as given by the CLI) must match the config's kind;
    ``max_steps``/``max_minutes`` override ``[training]`` (e.g. a short smoke run).
    """
    cfg = read_config(config)
    expected = {"unrolled": "unrolled", "csgm": "vae"}
    if target is not None and expected.get(target) != cfg["kind"]:
        raise ValueError(f"target {target!r} trains kind {expected.get(target)!r}, but the config's kind is "
                         f"{cfg['kind']!r}")
    out = output_folder(config, out_dir, cfg)
    train = cfg["training"]
    net = build_network(cfg)
    if cfg["kind"] == "unrolled":
        operator = _real_operator(training_operator(cfg))
        loss_fn = unrolled_loss(operator, float(cfg["noise"]["sigma"]))
    else:
        loss_fn = vae_loss(float(train.get("recon_std", 0.05)))
    result = train_from_table(net, loss_fn, config_batches(cfg), train, device=device,
                              checkpoint_dir=out / "checkpoints", resume=resume, max_steps=max_steps,
                              max_minutes=max_minutes, progress=progress, default_lr=1e-3)
    info = {"kind": cfg["kind"], "parameters": sum(p.numel() for p in net.parameters()),
            "batch_size": int(train["batch_size"]), "final_loss_mean_last_200": mean_tail(result.losses, 200)}
    return finish_run(out, result.ema, result, cfg, device=device, info=info)
