"""Forward operators: one family per file. See :mod:`bayesinv.operators.base` for the contract.

=================  ==========================================  =================================
name               class / builder                             measurements
=================  ==========================================  =================================
denoise            :class:`Identity`                           the image
inpaint            :class:`Inpaint`                            masked image (or observed pixels)
superres           :class:`SuperResolution`                    ``f x f`` block means
deblur             :class:`Blur`                               circular convolution
cs_gaussian        :func:`gaussian_sensing`                    ``m`` random projections
cs_bernoulli       :func:`bernoulli_sensing`                   ``m`` random ±1 projections
cs_fourier         :class:`SubsampledFourier`                  ``m`` random DFT coefficients
mri                :class:`MRI`                                undersampled k-space lines
mri_multicoil      :class:`MultiCoilMRI`                       per-coil undersampled k-space
phase_retrieval    :class:`PhaseRetrieval`                     ``|A x|^2``
phase_cdp          :class:`CodedDiffraction`                   ``|F(d_k x)|^2``
=================  ==========================================  =================================
"""

from bayesinv.operators.base import SVD, LinearOperator, Operator, conjugate_gradient, finite_checks, inner
from bayesinv.operators.blur import Blur, gaussian_kernel, motion_kernel, uniform_kernel
from bayesinv.operators.cs import SubsampledFourier, bernoulli_sensing, gaussian_sensing, random_frequency_mask
from bayesinv.operators.denoise import Identity
from bayesinv.operators.inpaint import Inpaint, box_mask, random_mask
from bayesinv.operators.matrix import MatrixOperator
from bayesinv.operators.mri import MRI, MaskedFourier, MultiCoilMRI, cartesian_mask, simulate_coil_maps
from bayesinv.operators.phase import CodedDiffraction, PhaseRetrieval
from bayesinv.operators.registry import OPERATORS, make_operator, operator_options
from bayesinv.operators.superres import SuperResolution

__all__ = [
    "SVD", "LinearOperator", "Operator", "conjugate_gradient", "finite_checks", "inner",
    "Identity", "MatrixOperator",
    "Blur", "gaussian_kernel", "uniform_kernel", "motion_kernel",
    "Inpaint", "random_mask", "box_mask",
    "SuperResolution",
    "gaussian_sensing", "bernoulli_sensing", "SubsampledFourier", "random_frequency_mask",
    "MaskedFourier", "MRI", "MultiCoilMRI", "cartesian_mask", "simulate_coil_maps",
    "PhaseRetrieval", "CodedDiffraction",
    "OPERATORS", "make_operator", "operator_options",
]
