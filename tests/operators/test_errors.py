"""Bad input to operators raises clear errors naming the argument and the expected versus the given value."""

from __future__ import annotations

import pytest
import torch

from bayesinv.errors import DTypeError, NonFiniteError, ShapeError
from bayesinv.operators import (MRI, Blur, CodedDiffraction, Inpaint, MultiCoilMRI, PhaseRetrieval, SubsampledFourier,
                                SuperResolution, box_mask, cartesian_mask, gaussian_kernel, gaussian_sensing,
                                make_operator, motion_kernel, random_mask, simulate_coil_maps)

SHAPE = (1, 8, 8)


def _ops():
    g = torch.Generator().manual_seed(0)
    return [Blur.gaussian(SHAPE, 1.0), Inpaint(SHAPE, random_mask((8, 8), 0.5, g)), SuperResolution(SHAPE, 2),
            MRI(SHAPE, cartesian_mask(8, 2, 0.25, generator=g)), SubsampledFourier.random(SHAPE, 10, g),
            MultiCoilMRI(SHAPE, cartesian_mask(8, 2, 0.25, generator=g), simulate_coil_maps(2, 8)),
            gaussian_sensing(SHAPE, 10, g), PhaseRetrieval(SHAPE, 20, g), CodedDiffraction(SHAPE, 2, g)]


@pytest.mark.parametrize("op", _ops(), ids=lambda op: type(op).__name__)
def test_wrong_shape_complex_and_non_finite_inputs(op):
    with pytest.raises(ShapeError, match=r"x must have shape \(B, 1, 8, 8\), got \(2, 1, 8, 7\)"):
        op(torch.zeros(2, 1, 8, 7))
    with pytest.raises(ShapeError, match=r"x must have shape"):
        op(torch.zeros(1, 8, 8))  # no batch dimension
    with pytest.raises(DTypeError, match="x is complex"):
        op(torch.zeros(1, *SHAPE, dtype=torch.complex64))
    with pytest.raises(DTypeError, match="floating-point"):
        op(torch.zeros(1, *SHAPE, dtype=torch.int64))
    for bad in (float("nan"), float("inf")):
        x = torch.zeros(2, *SHAPE)
        x[1, 0, 3, 3] = bad
        with pytest.raises(NonFiniteError, match="x contains 1 non-finite"):
            op(x)
    if op.linear:
        y = torch.zeros(1, *op.out_shape, dtype=torch.complex64 if op.output_complex else torch.float32)
        y.view(-1)[0] = float("nan")
        for method in (op.adjoint, op.pinv):
            with pytest.raises(NonFiniteError, match="y contains"):
                method(y)
        with pytest.raises(ShapeError, match="y must have shape"):
            op.adjoint(torch.zeros(1, 3))
        if not op.output_complex:
            with pytest.raises(DTypeError, match="y is complex"):
                op.adjoint(torch.zeros(1, *op.out_shape, dtype=torch.complex64))


def test_mask_errors_name_the_argument_and_shapes():
    with pytest.raises(ShapeError, match=r"mask must have shape \(8, 8\) or \(1, 8, 8\) .* got \(6, 6\)"):
        Inpaint(SHAPE, torch.ones(6, 6, dtype=torch.bool))
    with pytest.raises(DTypeError, match="mask must be a boolean tensor .* got dtype torch.float32"):
        Inpaint(SHAPE, torch.ones(8, 8))
    with pytest.raises(ShapeError, match="mask must have shape"):
        MRI(SHAPE, torch.ones(8, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="output must be one of"):
        Inpaint(SHAPE, torch.ones(8, 8, dtype=torch.bool), output="masked")
    with pytest.raises(ValueError, match="fraction_missing must be a number in"):
        random_mask((8, 8), 1.5)
    with pytest.raises(ValueError, match="box must be .* inside the 8x8 image, got"):
        box_mask((8, 8), (6, 6, 4, 4))


def test_kernel_errors():
    with pytest.raises(ShapeError, match=r"kernel of size \(9, 9\) is larger than the image \(8, 8\)"):
        Blur(SHAPE, gaussian_kernel(9, 1.0))
    with pytest.raises(ShapeError, match="kernel must have shape"):
        Blur(SHAPE, torch.ones(3))
    with pytest.raises(DTypeError, match="kernel must be a real"):
        Blur(SHAPE, torch.ones(3, 3, dtype=torch.complex64))
    with pytest.raises(NonFiniteError, match="kernel contains"):
        Blur(SHAPE, torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match="size of a Gaussian kernel must be odd"):
        gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError, match="std must be non-negative"):
        gaussian_kernel(5, -1.0)
    with pytest.raises(ValueError, match="length must be at most size - 1 = 4"):
        motion_kernel(5, 0.0, 7.0)
    batched = Blur.gaussian(SHAPE, torch.tensor([0.5, 1.0, 2.0]), size=5)
    with pytest.raises(ShapeError, match="3 kernels but x has batch size 2"):
        batched(torch.zeros(2, *SHAPE))
    with pytest.raises(ValueError, match="to_matrix"):
        batched.to_matrix()


def test_other_parameter_errors():
    with pytest.raises(ShapeError, match=r"factor=3 must divide the image size \(H, W\) = \(8, 8\)"):
        SuperResolution(SHAPE, 3)
    with pytest.raises(ValueError, match="factor must be a positive integer, got 0"):
        SuperResolution(SHAPE, 0)
    with pytest.raises(ValueError, match=r"acceleration must be a number in \[1, W=8\], got 0.5"):
        cartesian_mask(8, 0.5)
    with pytest.raises(ValueError, match="center_fraction=0.5 asks for 16 central lines but acceleration=4"):
        cartesian_mask(32, 4, center_fraction=0.5)
    with pytest.raises(ValueError, match="kind must be one of"):
        cartesian_mask(8, 2, kind="radial")
    with pytest.raises(ShapeError, match=r"coil_maps must have shape \(N, 8, 8\)"):
        MultiCoilMRI(SHAPE, torch.ones(8, 8, dtype=torch.bool), simulate_coil_maps(2, 6))
    with pytest.raises(ValueError, match="num_measurements must be at most 64"):
        gaussian_sensing(SHAPE, 100)
    with pytest.raises(ShapeError, match=r"in_shape must be a shape \(C, H, W\)"):
        Blur((8, 8), gaussian_kernel(3, 1.0))


def test_make_operator_errors_list_the_valid_choices():
    with pytest.raises(ValueError, match=r"operator name must be one of \[.*'deblur'.*'mri'.*\], got 'deblurr'"):
        make_operator("deblurr", SHAPE)
    with pytest.raises(TypeError, match=r"operator 'mri' got unknown option\(s\) \['accel'\]; valid options: .*acceleration"):
        make_operator("mri", SHAPE, accel=4)
    with pytest.raises(ValueError, match="ratio must be a number in"):
        make_operator("cs_gaussian", SHAPE, ratio=2.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        make_operator("deblur", SHAPE, kernel="disk")
    with pytest.raises(ShapeError, match="shape must be a shape"):
        make_operator("denoise", (8, 8))
