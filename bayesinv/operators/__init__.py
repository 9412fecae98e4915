"""Forward operators: one family per file. See :mod:`bayesinv.operators.base` for the contract."""

from bayesinv.operators.base import SVD, LinearOperator, Operator, conjugate_gradient, inner
from bayesinv.operators.denoise import Identity

__all__ = ["SVD", "LinearOperator", "Operator", "conjugate_gradient", "inner", "Identity"]
