"""``RealInput``: a complex-input linear operator restricted to real images (no heavy imports, so training
code can use it on machines without the full dependency set)."""

from __future__ import annotations

import torch

from bayesinv.operators.base import LinearOperator

__all__ = ["RealInput"]


class RealInput(LinearOperator):
    """A complex-input linear operator restricted to real images: ``x -> A x`` for real ``x``.

    Its adjoint is ``Re(A^H y)``, the adjoint for the real inner product, so ``A^H A`` becomes the
    real-linear operator ``Re(A^H A)``; no SVD is exposed (the complex one does not apply).
    """

    def __init__(self, operator: LinearOperator):
        super().__init__(operator.in_shape, operator.out_shape, input_complex=False,
                         output_complex=operator.output_complex)
        self.base = operator

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.base.adjoint(y).real

    def __repr__(self) -> str:
        return f"RealInput({self.base!r})"
