r"""Compressed sensing with a generative model (CSGM; Bora, Jalal, Price & Dimakis 2017).

.. math::  \hat z = \arg\min_z \|A G(z) - y\|^2 + \lambda \|z\|^2, \qquad \hat x = G(\hat z),

with ``G`` the decoder of a VAE trained on phantoms (``models/csgm-vae32``), minimised by Adam from
``restarts`` random starts ``z_0 ~ N(0, I)`` (drawn from ``generator``, run as one batch); the restart
with the lowest objective wins (the paper's random restarts). The default ``lambda = sigma_y^2`` makes
the objective ``2 sigma_y^2`` times the negative log posterior of ``z`` under the VAE's ``N(0, I)`` prior
and a Gaussian likelihood (a MAP estimate in latent space); Bora et al. use a tuned ``lambda`` (0.1 for
their MNIST experiments). Works with any operator (autograd through ``A``), complex k-space included.
"""

from __future__ import annotations

import math

import torch

from bayesinv.noise import as_real_view
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import progress_bar
from bayesinv.samplers.baselines._shared import check_iterate, point_posterior, prepare
from bayesinv.samplers.baselines.nets import load_for_operator

__all__ = ["csgm"]


def csgm(problem: InverseProblem, y: torch.Tensor, *, model: str = "csgm-vae32", weight: float | None = None,
         restarts: int = 4, steps: int = 300, lr: float = 0.05, generator: torch.Generator | None = None,
         progress: bool = False, latents=None) -> Posterior:
    """CSGM reconstruction ``G(argmin_z ||A G(z) - y||^2 + lambda ||z||^2)`` as a point-mass Posterior.

    Parameters
    ----------
    model : the VAE under ``models/`` (or a path) whose decoder is ``G``.
    weight : ``lambda``; default ``sigma_y^2`` (needs Gaussian noise of known sigma).
    restarts : random restarts, optimised together as a batch.
    steps, lr : Adam iterations and learning rate.
    generator : draws the starting points (default: seed 0).

    ``nfe`` is the number of decoder evaluations per restart (``steps + 1``); ``extras`` report the
    objective of every restart and the winner.
    """
    for key, value in (("restarts", restarts), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"csgm: {key} must be a positive int, got {value!r}")
    if not (float(lr) > 0 and math.isfinite(float(lr))):
        raise ValueError(f"csgm: lr must be a positive finite number, got {lr!r}")
    if weight is not None and not (float(weight) >= 0 and math.isfinite(float(weight))):
        raise ValueError(f"csgm: weight must be a non-negative finite number or None, got {weight!r}")
    setup = prepare("csgm", problem, y, linear=False, need_sigma=weight is None, generator=generator, latents=latents)
    op, y = setup.operator, setup.y
    net, cfg = load_for_operator("csgm", model, "vae", op.in_shape, device=y.device)
    lam = setup.sigma**2 if weight is None else float(weight)
    dtype = next(net.parameters()).dtype
    z = torch.randn((restarts, net.latent_dim), generator=setup.generator, dtype=dtype,
                    device=setup.generator.device).to(y.device).requires_grad_(True)  # same draws on every device
    optimizer = torch.optim.Adam([z], lr=float(lr))
    target = y.to(torch.complex64 if y.is_complex() else dtype)

    def objective(latent: torch.Tensor) -> torch.Tensor:
        image = net.decode(latent).to(y.real.dtype).to(op.input_dtype(y.real.dtype))
        resid = as_real_view(op(image) - target.to(op.output_dtype(y.real.dtype)))
        return (resid.reshape(restarts, -1) ** 2).sum(1) + lam * (latent**2).sum(1)

    bar = progress_bar(steps, progress, "csgm")
    with torch.enable_grad():
        for step in range(1, steps + 1):
            optimizer.zero_grad(set_to_none=True)
            loss = objective(z)
            loss.sum().backward()
            optimizer.step()
            check_iterate("csgm", step, z.detach())
            bar.update(1)
    bar.close()
    with torch.no_grad():
        final = objective(z)
        best = int(final.argmin())
        x = net.decode(z[best: best + 1]).to(y.real.dtype)
    extras = {"weight": lam, "restarts": restarts, "steps": steps, "objectives": final.tolist(), "best_restart": best,
              "objective": float(final[best]), "model": str(model)}
    settings = {"model": model, "weight": weight, "restarts": restarts, "steps": steps, "lr": lr}
    return point_posterior("csgm", x, setup, problem, settings=settings, nfe=steps + 1, extras=extras)
