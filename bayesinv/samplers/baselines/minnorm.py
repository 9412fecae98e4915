"""Minimum-norm least squares ``x = A^+ y``: the data-only reconstruction every prior must beat.

``A^+ y`` is the operator's own pseudo-inverse (:meth:`~bayesinv.operators.base.LinearOperator.pinv`:
the SVD where cheap, ``A^H (A A^H)^{-1} y`` by conjugate gradients otherwise). It is unbiased on
the row space of ``A`` and zero on its null space, so comparing a posterior with it separates what the
data say from what the prior adds.
"""

from __future__ import annotations

import torch

from bayesinv.posterior import Posterior
from bayesinv.problem import InverseProblem
from bayesinv.samplers.baselines._shared import point_posterior, prepare

__all__ = ["minnorm", "minnorm_solve"]


def minnorm_solve(operator, y: torch.Tensor) -> torch.Tensor:
    """``A^+ y`` for a batch ``y: (B, *out_shape)`` -> ``(B, *in_shape)``."""
    return operator.pinv(y)


def minnorm(problem: InverseProblem, y: torch.Tensor, *, progress: bool = False, real: bool = False,
            latents=None) -> Posterior:
    """Minimum-norm solution ``A^+ y`` as a point-mass :class:`~bayesinv.posterior.Posterior`.

    Parameters
    ----------
    problem : the inverse problem (a linear operator; the prior is not used).
    y : one measurement, ``(*out_shape)`` or ``(1, *out_shape)``.
    progress : unused (there is nothing to iterate); accepted for a uniform call.
    real : restrict a complex-input operator to real images (``A^+`` of :class:`RealInput`, by CG).
    latents : values of the problem's latent sites, if it has any.

    >>> import torch
    >>> from bayesinv import Gaussian, InverseProblem
    >>> from bayesinv.operators.matrix import MatrixOperator
    >>> op = MatrixOperator(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    >>> post = minnorm(InverseProblem(op, Gaussian(0.1)), torch.tensor([2.0], dtype=torch.float64))
    >>> post.mean().round(decimals=9).tolist()
    [1.0, 1.0]
    """
    setup = prepare("minnorm", problem, y, real=real, latents=latents)
    x = minnorm_solve(setup.operator, setup.y)
    return point_posterior("minnorm", x, setup, problem, settings={"real": real}, nfe=0,
                           extras={"iterations": 0, "method": "pinv"})
