r"""Dirac: denoising and incremental reconstruction (Fabian, Tinaz & Soltanolkotabi 2024, ICML).

The measurement is the end point of a degradation process ``y_t = A_t(x0) + z_t``, ``z_t ~ N(0, sigma_t^2)``,
``A_0 = I``, ``A_1`` the problem's operator (:mod:`bayesinv.operators.degradation`). A network trained on
that process predicts ``x0_hat = Phi(y_t, t)`` (:mod:`bayesinv.samplers.dirac_model`). Sampling starts
from the measurement ``y_1`` and runs the time grid ``t_i = 1 - i / steps`` backwards; one step from ``t``
to ``t' = t - dt`` is (the paper's Algorithm 1, "look-ahead" update of the authors' ``reverse_diffusion.py``)

    x0_hat = Phi(y_t, t)
    y_t' = y_t + [A_t'(x0_hat) - A_t(x0_hat)]                              (incremental reconstruction)
               + (sigma_t^2 - sigma_t'^2) / sigma_t^2 (A_t(x0_hat) - y_t)       (denoising: Tweedie score)
               - (sigma_t^2 - sigma_t'^2) grad_{y_t} R(y_t)                      (optional data consistency)
               + sqrt(sigma_t^2 - sigma_t'^2) z,                 z ~ N(0, I).

``R`` is the guidance penalty ``dc_step ||y - A Phi(y_t, 1)||^2 / (2 sigma_y^2)`` (``dc_scaling="absolute"``:
``-dc_step`` times the log-likelihood of ``y``) or ``dc_step ||y - A Phi(y_t, 1)||`` (``"relative"``), whose
gradient is taken through the network. The paper writes this term as ``+(sigma_t^2 - sigma_t'^2)`` times
the likelihood score, i.e. a descent on ``R`` (the sign used here).

*Early stopping.* The loop ends after the step whose ``t'`` falls below ``stop_time`` (or at ``t' = 0``) and
returns ``x0_hat`` of that step (``last="x0_hat"``) or the updated ``y_t'`` (``last="iterate"``). Dirac-PO
(perception-optimised) runs most of the trajectory and returns a sample; Dirac-DO (distortion-optimised)
stops at once and returns the network's estimate ``Phi(y_1, 1)``, one network evaluation. The defaults
(:data:`DIRAC_PRESETS`) are the authors' CelebA-HQ reconstruction configs (``configs/reconstruction/``).

With an oracle network (``x0_hat = x0``) the update keeps ``E[y_t] = A_t(x0)`` exactly and the variance
follows ``v_t' = (sigma_t'^2 / sigma_t^2)^2 v_t + sigma_t^2 - sigma_t'^2`` (Euler–Maruyama of the
reverse-time SDE), which is ``sigma_t'^2 + O(dt)``; the tests check both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from bayesinv.noise import Gaussian
from bayesinv.operators.base import LinearOperator
from bayesinv.operators.degradation import Degradation, GeometricNoise
from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv._validation import check_step
from bayesinv.priors.schedules import standard_normal
from bayesinv.samplers._driver import (Clock, check_inputs, divergence_bound, draw_in_chunks, make_posterior,
                                       run_chain)
from bayesinv.samplers.dirac_model import DiracModel, load_dirac

__all__ = ["sample_dirac", "DiracModel", "DiracState", "dirac_update", "dirac_times", "DIRAC_PRESETS",
           "SHIPPED_MODELS"]

# Defaults from the authors' reconstruction configs (CelebA-HQ 256): dt, stop_t, dc_corr, x0_pred_in_last_step.
DIRAC_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "blur": {
        "po": {"steps": 50, "stop_time": 0.25, "dc_step": 0.5, "dc_scaling": "absolute", "last": "x0_hat"},
        "do": {"steps": 50, "stop_time": 1.0, "dc_step": 0.5, "dc_scaling": "absolute", "last": "x0_hat"},
    },
    "inpaint": {
        "po": {"steps": 200, "stop_time": 0.0, "dc_step": 1.0, "dc_scaling": "relative", "last": "iterate"},
        "do": {"steps": 5, "stop_time": 1.0, "dc_step": 0.0, "dc_scaling": "relative", "last": "x0_hat"},
    },
}

SHIPPED_MODELS = ("dirac-blur32", "dirac-inpaint32")


class DiracState(NamedTuple):
    """The iterate ``y`` at time ``t`` and the last network estimate ``x0_hat``."""

    y: torch.Tensor
    t: float
    x0_hat: torch.Tensor | None = None


def dirac_times(steps: int, stop_time: float) -> list[tuple[float, float, bool]]:
    """``(t, t', last)`` for each step run: ``t_i = 1 - i/steps`` until ``t' < stop_time`` or ``t' = 0``."""
    out = []
    for i in range(steps):
        last = i == steps - 1 or (i + 1) > (1.0 - stop_time) * steps + 1e-9
        out.append((1.0 - i / steps, 1.0 - (i + 1) / steps if i < steps - 1 else 0.0, last))
        if last:
            break
    return out


def dirac_update(y: torch.Tensor, x0_hat: torch.Tensor, t: float, t_next: float, *, degradation: Degradation,
                 noise_schedule: GeometricNoise, noise: torch.Tensor,
                 dc_gradient: torch.Tensor | None = None) -> torch.Tensor:
    """One Dirac step ``y_t -> y_t'`` given ``x0_hat`` (module docstring; a pure function).

    ``noise`` is standard normal of ``y``'s shape; ``dc_gradient`` is ``grad_{y_t} R`` (or None).
    """
    var_t = noise_schedule.std(t) ** 2
    var_next = noise_schedule.std(t_next) ** 2
    a_t = degradation.apply(x0_hat, t)
    incremental = degradation.apply(x0_hat, t_next) - a_t
    denoising = (var_t - var_next) / var_t * (a_t - y)
    out = y + incremental + denoising + math.sqrt(max(var_t - var_next, 0.0)) * noise
    if dc_gradient is not None:
        out = out - (var_t - var_next) * dc_gradient
    return out


def _resolve_model(model, problem: InverseProblem, device: torch.device) -> DiracModel:
    """The Dirac model; a named or shipped one is loaded with its network on ``device`` (that of ``y``)."""
    if isinstance(model, DiracModel):
        return model
    if isinstance(model, str):
        return load_dirac(model, device=device)
    if model is not None:
        raise TypeError(f"dirac: model must be a DiracModel, a model name such as 'dirac-blur32' or None, "
                        f"got {type(model).__name__}")
    reasons = []
    for name in SHIPPED_MODELS:
        try:
            candidate = load_dirac(name, device=device)
            candidate.degradation.check_target(problem.operator)
            return candidate
        except (ValueError, FileNotFoundError) as err:
            reasons.append(f"{name}: {err}")
    raise ValueError("dirac: no shipped Dirac model matches this problem's operator; train one with "
                     "`bayesinv train dirac --config ...` and pass model=...\n  " + "\n  ".join(reasons))


def _check_problem(problem: InverseProblem, model: DiracModel) -> LinearOperator:
    if problem.latent_names:
        raise ValueError(f"dirac: problems with latent sites {problem.latent_names} are not supported; "
                         "the Dirac network is trained for one fixed operator and noise level")
    operator = problem.operator
    model.degradation.check_target(operator)
    noise = problem.noise
    if not isinstance(noise, Gaussian) or noise.sigma is None:
        raise ValueError(f"dirac: needs Gaussian noise of known sigma, got {noise!r}")
    if not math.isclose(float(noise.sigma), model.noise.sigma_max, rel_tol=1e-6):
        raise ValueError(f"dirac: the problem's noise sigma {float(noise.sigma)} differs from the model's "
                         f"sigma_max={model.noise.sigma_max} (the noise of the degradation process at t=1)")
    return operator


def _settings(model: DiracModel, variant: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    kind = model.degradation.kind
    if variant not in ("po", "do"):
        raise ValueError(f"dirac: variant must be 'po' (perception-optimised) or 'do' (distortion-optimised), "
                         f"got {variant!r}")
    settings = dict(DIRAC_PRESETS.get(kind, DIRAC_PRESETS["blur"])[variant])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if not 0.0 <= float(settings["stop_time"]) <= 1.0:
        raise ValueError(f"dirac: stop_time must lie in [0, 1], got {settings['stop_time']}")
    if float(settings["dc_step"]) < 0:
        raise ValueError(f"dirac: dc_step must be >= 0, got {settings['dc_step']}")
    if settings["dc_scaling"] not in ("absolute", "relative"):
        raise ValueError(f"dirac: dc_scaling must be 'absolute' or 'relative', got {settings['dc_scaling']!r}")
    if settings["last"] not in ("x0_hat", "iterate"):
        raise ValueError(f"dirac: last must be 'x0_hat' or 'iterate', got {settings['last']!r}")
    return settings


def _predict(model: DiracModel, y_t: torch.Tensor, t: float) -> torch.Tensor:
    times = torch.full((y_t.shape[0],), t, dtype=y_t.dtype, device=y_t.device)
    return model.denoiser(y_t, times).to(y_t.dtype)


def _predict_with_dc(model: DiracModel, y_t: torch.Tensor, t: float, operator: LinearOperator, y: torch.Tensor,
                     dc_step: float, scaling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0_hat`` and ``grad_{y_t} R`` (the penalty of the module docstring) by autograd through the network."""
    with torch.enable_grad():
        y_t = y_t.detach().requires_grad_(True)
        x0_hat = _predict(model, y_t, t)
        resid = (y - operator(x0_hat)).reshape(y_t.shape[0], -1)
        sq = (resid**2).sum(1)
        if scaling == "absolute":
            penalty = dc_step * sq / (2 * model.noise.sigma_max**2)
        else:
            penalty = dc_step * sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()
        (grad,) = torch.autograd.grad(penalty.sum(), y_t)
    return x0_hat.detach(), grad


def sample_dirac(problem: InverseProblem, y: torch.Tensor, *, num_samples: int, generator: torch.Generator,
                 model: DiracModel | str | None = None, variant: str = "po", steps: int | None = None,
                 stop_time: float | None = None, dc_step: float | None = None, dc_scaling: str | None = None,
                 last: str | None = None, batch_size: int | None = None, progress: bool = True,
                 callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> Posterior:
    """Reconstruct by reversing the Dirac degradation process from the measurement (module docstring).

    Parameters
    ----------
    problem : linear operator equal to the model's ``A_1``, Gaussian noise with the model's ``sigma_max``
        (the prior is not used: the network is the prior).
    y : the measurement ``(*out_shape)`` or ``(1, *out_shape)``.
    num_samples, generator, batch_size, progress, callback : as for every sampler; ``callback(step, y_t, x0_hat)``.
    model : a :class:`DiracModel`, the name of a shipped model (``"dirac-blur32"``, ``"dirac-inpaint32"``) or a
        folder, or None: the shipped model whose degradation matches the problem's operator.
    variant : ``"po"`` (Dirac-PO) or ``"do"`` (Dirac-DO): which preset fills the options left as None.
    steps : time-grid intervals ``1 / dt``; stop_time : early-stopping time; dc_step, dc_scaling : the
        data-consistency guidance (``dc_step=0`` switches it off); last : ``"x0_hat"`` or ``"iterate"``.

    Returns
    -------
    Posterior with samples ``(num_samples, 1, *in_shape)``; ``nfe`` = network evaluations per chain.

    Examples
    --------
    >>> import torch
    >>> from bayesinv import Gaussian, InverseProblem
    >>> from bayesinv.operators.degradation import InpaintDegradation, GeometricNoise, MaskOperator
    >>> deg = InpaintDegradation((1, 2, 2), torch.tensor([[True, False], [True, True]]))
    >>> x0 = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    >>> oracle = DiracModel(lambda y_t, t: x0.expand_as(y_t), deg, GeometricNoise(0.01, 0.05))
    >>> problem = InverseProblem(deg.operator_at(1.0), Gaussian(0.05))
    >>> post = sample_dirac(problem, deg.apply(x0, 1.0), num_samples=3, model=oracle, variant="do",
    ...                     generator=torch.Generator().manual_seed(0), progress=False)
    >>> post.nfe, bool(torch.equal(post.samples[:, 0], x0.expand(3, 1, 2, 2)))
    (1, True)
    """
    name = "dirac"
    y = check_inputs(name, problem, y, num_samples=num_samples, steps=steps, generator=generator,
                     need_score_prior=False)
    model = _resolve_model(model, problem, y.device)
    operator = _check_problem(problem, model)
    settings = _settings(model, variant, {"steps": steps, "stop_time": stop_time, "dc_step": dc_step,
                                          "dc_scaling": dc_scaling, "last": last})
    times = dirac_times(int(settings["steps"]), float(settings["stop_time"]))
    dc = float(settings["dc_step"])
    shape = model.degradation.in_shape
    real = y.real.dtype if y.is_complex() else y.dtype
    sigma_1 = model.noise.std(1.0)
    clock = Clock()

    def draw(start: int, n: int):
        def step(state: DiracState, time: tuple[int, float, float, bool]) -> DiracState:
            i, t, t_next, is_last = time
            noise = standard_normal((n, *shape), generator, state.y)
            use_dc = dc > 0 and not (is_last and settings["last"] == "x0_hat")
            if use_dc:
                x0_hat, grad = _predict_with_dc(model, state.y, t, operator, y, dc, settings["dc_scaling"])
            else:
                with torch.no_grad():
                    x0_hat, grad = _predict(model, state.y, t), None
            check_step(name, i, x0_hat, last_good=state.y, detail=f"network output at t={t:.4g}")
            if is_last and settings["last"] == "x0_hat":
                new_y = x0_hat
            else:
                new_y = dirac_update(state.y, x0_hat, t, t_next, degradation=model.degradation,
                                     noise_schedule=model.noise, noise=noise, dc_gradient=grad)
            return DiracState(new_y.detach(), t_next, x0_hat)

        start_noise = standard_normal((n, *shape), generator, y).to(real)
        state = DiracState(model.degradation.embed_measurement(y, operator, sigma_1, start_noise).to(real), 1.0)
        state = run_chain(step, state, [(i, *time) for i, time in enumerate(times)], name=name, progress=progress,
                          callback=callback, iterate=lambda st: st.y,
                          bound=lambda st: divergence_bound(problem.prior, 1.0, model.noise.std(st.t)),
                          detail=lambda old, new: f"time {old.t:.4g} -> {new.t:.4g}")
        return state.y[:, None], {}

    samples, _ = draw_in_chunks(num_samples, batch_size, draw)
    meta = dict(settings, variant=variant, model=model.name, sigma_min=model.noise.sigma_min,
                sigma_max=model.noise.sigma_max, degradation=model.degradation.kind, batch_size=batch_size)
    return make_posterior(name, samples, settings=meta, nfe=len(times), clock=clock, generator=generator,
                          problem=problem)
