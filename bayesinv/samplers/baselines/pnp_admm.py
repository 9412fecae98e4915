r"""Plug-and-play ADMM: a prior's MMSE denoiser at a fixed noise level as the proximal step.

Venkatakrishnan, Bouman & Wohlberg (2013); Chan, Wang & Elgendy (2017). With the likelihood
``f(x) = ||A x - y||^2 / (2 sigma_y^2)`` and a denoiser ``D_s`` at data-unit noise level ``s``, the
iterations (scaled dual ``u``, penalty ``rho = 1 / s^2``) are

.. math::
    x_{k+1} &= (A^H A / \sigma_y^2 + \rho I)^{-1} (A^H y / \sigma_y^2 + \rho (z_k - u_k)) \\
    z_{k+1} &= D_s(x_{k+1} + u_k), \qquad u_{k+1} = u_k + x_{k+1} - z_{k+1}.

The denoiser is ``problem.prior.denoise(alpha_t v, t)`` at the timestep ``t`` whose noise level
``sigma_t / alpha_t`` is closest to the requested one (DiffPIR's use of a diffusion prior's ``x0``
prediction as a denoiser, Zhu et al. 2023); ``rho`` uses the level actually reached, ``s = sigma_t/alpha_t``.

Fixed point. For a Gaussian prior ``N(mu, Sigma)`` the MMSE denoiser is the proximal map of
``s^2 (-log p)``: ``D_s(v) = mu + Sigma (Sigma + s^2 I)^{-1} (v - mu)``. At a fixed point ``x = z``,
``u = s^2 Sigma^{-1}(x - mu)`` and the x-step gives ``A^H(Ax - y)/sigma_y^2 + Sigma^{-1}(x - mu) = 0``:
PnP-ADMM converges to the exact posterior mean (= MAP) for every ``s``, which the tests check.

The x-step is exact in the operator's SVD basis where usable and conjugate gradients otherwise.
Stops when ``max(||x - z||, ||z_k - z_{k-1}||) / ||z|| < tol`` (primal and dual residuals of ADMM).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from bayesinv.posterior import Posterior
from bayesinv.priors.base import ScorePrior
from bayesinv.problem import InverseProblem
from bayesinv.samplers._driver import progress_bar
from bayesinv.samplers.baselines._shared import (check_iterate, flatten_norm, point_posterior, prepare,
                                                 shifted_normal_solve)

__all__ = ["pnp_admm", "pnp_admm_solve", "PnPResult"]


class PnPResult(NamedTuple):
    """A PnP-ADMM reconstruction and its diagnostics (per item ``(B,)``)."""

    x: torch.Tensor  # the denoised iterate z (lies in the prior's range)
    iterations: int
    primal_residual: torch.Tensor  # ||x - z|| / ||z||
    dual_residual: torch.Tensor  # ||z_k - z_{k-1}|| / ||z||
    noise_level: float  # the denoiser's noise level s actually used
    timestep: int
    converged: bool


def pnp_admm_solve(op, y: torch.Tensor, prior: ScorePrior, sigma: float, *, noise_level: float, max_iter: int = 100,
                   tol: float = 1e-4, cg_iterations: int = 100, progress: bool = False,
                   name: str = "pnp_admm") -> PnPResult:
    """PnP-ADMM iterations for ``y: (B, *out_shape)`` (see module docstring)."""
    t = prior.schedule.timestep_for_noise_level(noise_level)
    level = float(prior.schedule.noise_level(t))
    alpha = float(prior.schedule.alpha[t])
    rho = 1.0 / level**2
    rhs_data = op.adjoint(y) / sigma**2
    x = op.adjoint(y) * 0
    z, u = x.clone(), x.clone()
    primal = dual = torch.full((y.shape[0],), math.inf, dtype=y.real.dtype, device=y.device)
    bar = progress_bar(max_iter, progress, name)
    it, converged = 0, False
    for it in range(1, max_iter + 1):
        x = shifted_normal_solve(op, rhs_data + rho * (z - u), rho, scale=1.0 / sigma**2, x0=x,
                                 max_iter=cg_iterations)
        check_iterate(name, it, x)
        v = x + u
        z_new = prior.denoise(alpha * v, t).to(v.dtype)
        check_iterate(name, it, z_new)
        u = u + x - z_new
        scale = flatten_norm(z_new).clamp_min(1e-30)
        primal, dual = flatten_norm(x - z_new) / scale, flatten_norm(z_new - z) / scale
        z = z_new
        bar.update(1)
        if bool((torch.maximum(primal, dual) < tol).all()):
            converged = True
            break
    bar.close()
    return PnPResult(z, it, primal, dual, level, t, converged)


def pnp_admm(problem: InverseProblem, y: torch.Tensor, *, noise_level: float | None = None, max_iter: int = 100,
             tol: float = 1e-4, cg_iterations: int = 100, progress: bool = False, latents=None) -> Posterior:
    """Plug-and-play ADMM with the problem's prior denoiser as a point-mass Posterior.

    Parameters
    ----------
    problem : needs a :class:`~bayesinv.priors.base.ScorePrior` (any: exact Gaussian, mixture, diffusion)
        and Gaussian noise of known sigma; a complex-input operator is restricted to real images
        (the prior's denoiser is real).
    noise_level : the denoiser's data-unit noise level ``s`` (``rho = 1/s^2``); default ``max(2 sigma_y, 0.05)``.
    max_iter, tol : iteration cap and the tolerance on the relative ADMM residuals.
    cg_iterations : conjugate-gradient iterations per x-step when the operator has no usable SVD.

    ``nfe`` is the number of denoiser calls.
    """
    setup = prepare("pnp_admm", problem, y, real=True, need_sigma=True, latents=latents)
    if not isinstance(problem.prior, ScorePrior):
        raise TypeError(f"pnp_admm: problem.prior must be a ScorePrior with denoise(x_t, t), "
                        f"got {type(problem.prior).__name__}")
    level = max(2 * setup.sigma, 0.05) if noise_level is None else float(noise_level)
    if not (level > 0 and math.isfinite(level)):
        raise ValueError(f"pnp_admm: noise_level must be a positive finite number, got {noise_level!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"pnp_admm: max_iter must be a positive int, got {max_iter!r}")
    res = pnp_admm_solve(setup.operator, setup.y, problem.prior, setup.sigma, noise_level=level, max_iter=max_iter,
                         tol=tol, cg_iterations=cg_iterations, progress=progress)
    extras = {"iterations": res.iterations, "noise_level": res.noise_level, "timestep": res.timestep,
              "primal_residual": float(res.primal_residual[0]), "dual_residual": float(res.dual_residual[0]),
              "converged": res.converged}
    settings = {"noise_level": noise_level, "max_iter": max_iter, "tol": tol, "cg_iterations": cg_iterations}
    return point_posterior("pnp_admm", res.x, setup, problem, settings=settings, nfe=res.iterations, extras=extras)
