"""A trained Neumann network (Gilton, Ongie & Willett 2019) as a point-estimate baseline.

``x = NN(y; A)`` with the network of ``models/<model>`` (see :mod:`bayesinv.samplers.baselines.nets`
for the architecture and :mod:`bayesinv.training.baselines` for its training). The network
is applied with the *problem's* operator; it was trained for one operator and noise level (its config's
``[operator]`` and ``[noise]``), and ``extras["operator_matches_training"]`` says whether the problem's
operator equals that one on a random probe (a mismatch still runs, with no quality guarantee).

Shipped models: ``unrolled-mri4x32`` (4x Cartesian MRI) and ``unrolled-deblur32`` (Gaussian blur,
std 1.5 px), both at ``sigma_y = 0.05`` on 32x32 phantoms.
"""

from __future__ import annotations

import torch

from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers.baselines._real import RealInput
from bayesinv.samplers.baselines._shared import point_posterior, prepare
from bayesinv.samplers.baselines.nets import load_for_operator, training_operator

__all__ = ["unrolled", "default_unrolled_model", "operator_matches"]

_DEFAULTS = {"MRI": "unrolled-mri4x32", "Blur": "unrolled-deblur32"}


def default_unrolled_model(operator) -> str:
    """The shipped model for an operator class (``MRI`` -> ``unrolled-mri4x32``, ``Blur`` -> ``unrolled-deblur32``)."""
    base = operator.base if isinstance(operator, RealInput) else operator
    name = type(base).__name__
    if name not in _DEFAULTS:
        raise ValueError(f"unrolled: no shipped model for {name}; pass model='<models/ folder or path>' "
                         f"(shipped: {sorted(_DEFAULTS.values())})")
    return _DEFAULTS[name]


def operator_matches(operator, cfg: dict, *, generator: torch.Generator | None = None) -> bool:
    """Whether ``operator`` equals the config's training operator on a random probe (relative error < 1e-6)."""
    reference = training_operator(cfg)
    if tuple(reference.in_shape) != tuple(operator.in_shape) or tuple(reference.out_shape) != tuple(operator.out_shape):
        return False
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    probe = torch.randn((1, *operator.in_shape), generator=gen, dtype=torch.float64)
    a, b = operator(probe), reference(probe)
    return bool((a - b).abs().norm() <= 1e-6 * b.abs().norm())


@torch.no_grad()
def unrolled(problem: InverseProblem, y: torch.Tensor, *, model: str | None = None, progress: bool = False,
             latents=None) -> Posterior:
    """Reconstruct with a trained unrolled (Neumann) network; a point-mass Posterior.

    Parameters
    ----------
    problem, y : a linear inverse problem on ``(C, H, W)`` images and one measurement.
    model : a folder under ``models/`` or a path; default chosen by the operator type.
    progress : unused (one forward pass).

    ``nfe`` is the number of network blocks evaluated; ``extras`` hold the model, its training noise
    level and whether the operator matches the training operator.
    """
    setup = prepare("unrolled", problem, y, real=True, latents=latents)
    op = setup.operator
    name = model if model is not None else default_unrolled_model(op)
    net, cfg = load_for_operator("unrolled", name, "unrolled", op.in_shape, device=setup.y.device)
    real_dtype = next(net.parameters()).dtype  # the network's precision (float32)
    y_net = setup.y.to(torch.complex64 if real_dtype == torch.float32 else torch.complex128) if setup.y.is_complex() \
        else setup.y.to(real_dtype)
    x = net(y_net, op).to(setup.y.real.dtype)
    extras = {"model": str(name), "blocks": net.blocks, "training_sigma": float(cfg["noise"]["sigma"]),
              "noise_sigma": setup.sigma, "operator_matches_training": operator_matches(op, cfg)}
    return point_posterior("unrolled", x, setup, problem, settings={"model": name}, nfe=net.blocks, extras=extras)
