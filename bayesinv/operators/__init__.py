"""Forward operators: one family per file. See :mod:`bayesinv.operators.base` for the contract."""

from bayesinv.operators.base import SVD, LinearOperator, Operator, conjugate_gradient, inner
from bayesinv.operators.blur import Blur, gaussian_kernel, motion_kernel, uniform_kernel
from bayesinv.operators.denoise import Identity
from bayesinv.operators.inpaint import Inpaint, box_mask, random_mask
from bayesinv.operators.matrix import MatrixOperator

__all__ = ["SVD", "LinearOperator", "Operator", "conjugate_gradient", "inner", "Identity", "MatrixOperator",
           "Blur", "gaussian_kernel", "uniform_kernel", "motion_kernel", "Inpaint", "random_mask", "box_mask"]
