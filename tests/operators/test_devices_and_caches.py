"""``Operator.to`` moves every registered tensor; derived caches follow kernel changes; finite checks switch off."""

from __future__ import annotations

import copy

import pytest
import torch

from bayesinv.errors import NonFiniteError
from bayesinv.operators import (MRI, Blur, CodedDiffraction, Inpaint, MultiCoilMRI, PhaseRetrieval, cartesian_mask,
                                gaussian_kernel, gaussian_sensing, random_mask, simulate_coil_maps)
from bayesinv.operators.base import check_finite_fast, finite_checks, finite_checks_enabled

SHAPE = (1, 8, 8)


def _ops():
    g = torch.Generator().manual_seed(0)
    return [Blur.gaussian(SHAPE, 1.0), Inpaint(SHAPE, random_mask((8, 8), 0.5, g)),
            Inpaint(SHAPE, random_mask((8, 8), 0.5, g), output="pixels"), MRI(SHAPE, cartesian_mask(8, 2, 0.25, generator=g)),
            MultiCoilMRI(SHAPE, cartesian_mask(8, 2, 0.25, generator=g), simulate_coil_maps(2, 8)),
            gaussian_sensing(SHAPE, 10, g), PhaseRetrieval(SHAPE, 20, g), CodedDiffraction(SHAPE, 2, g)]


@pytest.mark.parametrize("op", _ops(), ids=lambda op: type(op).__name__)
def test_to_moves_every_registered_tensor_and_keeps_results(op):
    assert op.tensors, "every operator with a mask, kernel, matrix or maps registers it"
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    before = op(x)
    assert op.to(torch.float32) is op
    for name, value in op.tensors.items():
        if value.is_floating_point():
            assert value.dtype == torch.float32, name
        elif value.is_complex():
            assert value.dtype == torch.complex64, name
    op.to(torch.float64)
    for value in op.tensors.values():
        assert value.dtype in (torch.float64, torch.complex128, torch.bool, torch.int64)
    op.to("cpu")
    assert all(v.device.type == "cpu" for v in op.tensors.values())
    after = op(x)
    assert after.dtype == before.dtype
    # float64 -> float32 -> float64 round-trips the stored values through float32 (mask values exactly)
    torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="floating-point or complex dtype"):
        op.to(torch.int64)


def test_blur_transfer_cache_follows_the_kernel():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    op = Blur.gaussian(SHAPE, 1.0)
    op(x)
    op.kernel = torch.zeros(3, 3, dtype=torch.float64)  # replaced
    op.kernel[1, 1] = 1.0  # ... and changed in place: the Dirac, so A = I exactly
    torch.testing.assert_close(op(x), x, rtol=0, atol=0)
    with torch.no_grad():
        op.kernel.mul_(2.0)  # in place: 2 I
    torch.testing.assert_close(op(x), 2 * x, rtol=1e-12, atol=1e-12)


def test_inpaint_mask_cache_follows_the_mask_and_the_input_dtype():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mask = random_mask((8, 8), 0.5, torch.Generator().manual_seed(4))
    op = Inpaint(SHAPE, mask)
    torch.testing.assert_close(op(x), x * mask, rtol=0, atol=0)
    out32 = op(x.float())  # a second dtype: its own conversion, not the float64 one
    assert out32.dtype == torch.float32 and torch.equal(out32, x.float() * mask)
    flat = op.mask.view(-1)
    flat[0] = not bool(flat[0])  # changed in place (through a view: the same version counter)
    torch.testing.assert_close(op.adjoint(x), x * op.mask, rtol=0, atol=0)
    op.mask = torch.ones(8, 8, dtype=torch.bool)  # replaced: A = I exactly
    torch.testing.assert_close(op(x), x, rtol=0, atol=0)
    xc = torch.complex(x, -x)  # complex input of a complex-input inpainting: weights in the real precision
    opc = Inpaint(SHAPE, mask, input_complex=True)
    torch.testing.assert_close(opc(xc), xc * mask, rtol=0, atol=0)


def test_finite_checks_nest_and_one_instance_can_be_entered_twice():
    switch_off = finite_checks(False)
    with switch_off:
        with finite_checks(True):
            assert finite_checks_enabled()
            with switch_off:
                assert not finite_checks_enabled()
            assert finite_checks_enabled()
        assert not finite_checks_enabled()
    assert finite_checks_enabled()


def test_blur_with_a_kernel_that_needs_grad_is_differentiable_on_every_call():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kernel = gaussian_kernel(5, 1.2).requires_grad_(True)  # a leaf latent, as in blind deblurring
    op = Blur(SHAPE, kernel)
    grads = []
    for _ in range(2):  # a cached transfer would be freed by the first backward and fail here
        (g,) = torch.autograd.grad(op(x).square().sum(), kernel)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    # d/dk ||A x||^2 = 2 * (correlation of A x with x): the kernel gradient from the dense matrix
    i, j = 1, 3
    dk = torch.zeros(5, 5, dtype=torch.float64)
    dk[i, j] = 1.0
    directional = 2 * (op(x) * Blur(SHAPE, dk)(x)).sum()
    torch.testing.assert_close(grads[0][i, j], directional, rtol=1e-12, atol=1e-12)


def test_real_fft_blur_equals_the_complex_fft_blur():
    x = torch.randn(4, 3, 10, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    real_op = Blur.gaussian((3, 10, 9), 1.5)
    complex_op = Blur((3, 10, 9), real_op.kernel, input_complex=True)
    torch.testing.assert_close(real_op(x), complex_op(x).real, rtol=0, atol=1e-14)
    torch.testing.assert_close(real_op.adjoint(x), complex_op.adjoint(x).real, rtol=0, atol=1e-14)


def test_finite_checks_can_be_switched_off_and_restore():
    op = Inpaint(SHAPE, torch.ones(8, 8, dtype=torch.bool))
    bad = torch.zeros(1, *SHAPE)
    bad[0, 0, 1, 1] = float("nan")
    assert finite_checks_enabled()
    with finite_checks(False):
        assert not finite_checks_enabled()
        assert bool(op(bad).isnan().any())
    assert finite_checks_enabled()
    with pytest.raises(NonFiniteError, match="x contains 1 non-finite"):
        op(bad)


def test_fast_finite_check_counts_and_tolerates_overflowing_sums():
    big = torch.full((4, 100), 3e38, dtype=torch.float32)  # finite entries whose sum overflows to inf
    assert check_finite_fast("x", big) is big
    big[1, 7] = float("-inf")
    big[2, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="x contains 2 non-finite value"):
        check_finite_fast("x", big)
    cplx = torch.zeros(2, 3, dtype=torch.complex64)
    cplx[0, 1] = complex(0.0, float("inf"))
    with pytest.raises(NonFiniteError, match="1 non-finite"):
        check_finite_fast("x", cplx)


def test_replacing_a_matrix_drops_its_cached_svd_and_transpose():
    g = torch.Generator().manual_seed(5)
    op = gaussian_sensing(SHAPE, 10, g)
    y = torch.randn(2, 10, generator=g, dtype=torch.float64)
    op.pinv(y), op.adjoint(y)
    new = torch.randn(10, 64, generator=g, dtype=torch.float64)
    op.matrix = new
    torch.testing.assert_close(op.adjoint(y).reshape(2, -1), y @ new, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.pinv(y).reshape(2, -1), y @ torch.linalg.pinv(new).T, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", _ops(), ids=lambda op: type(op).__name__)
def test_operators_follow_a_non_default_device(op):
    """Moved to the ``meta`` device (shapes without data: a stand-in for an accelerator), an operator keeps
    every registered tensor and every output there, and the output shapes and dtypes are those on the CPU."""
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(6))
    want = op(x)
    original, op = op, copy.deepcopy(op).to("meta")  # a meta tensor cannot come back: move a copy
    assert all(v.device.type == "meta" for v in op.tensors.values())
    with finite_checks(False):  # the check reads a value back, which a meta tensor has not
        got = op(x.to("meta"))
        assert got.device.type == "meta" and got.shape == want.shape and got.dtype == want.dtype
        if op.linear:
            back = op.adjoint(got)
            assert back.device.type == "meta" and back.shape == x.shape
    torch.testing.assert_close(original(x), want, rtol=0, atol=0)
    assert all(v.device.type == "cpu" for v in original.tensors.values())


def test_to_moves_the_tensors_of_wrapped_operators():
    from bayesinv.operators.base import LinearOperator

    class Twice(LinearOperator):
        def __init__(self, inner):
            super().__init__(inner.in_shape, inner.out_shape)
            self.inner = inner

        def _forward(self, x):
            return 2 * self.inner(x)

        def _adjoint(self, y):
            return 2 * self.inner.adjoint(y)

    inner = Blur.gaussian(SHAPE, 1.0)
    op = Twice(inner).to(torch.float32)
    assert inner.kernel.dtype == torch.float32
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(op(x), 2 * inner(x), rtol=0, atol=0)


SVD_OPERATORS = ["denoise", "inpaint", "superres", "deblur", "cs_gaussian", "cs_fourier", "mri"]


def _svd_outputs(op, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    from bayesinv.operators._spectral import svd_pinv

    svd = op.svd()
    coef = svd.Vt(x)
    return {"singulars": svd.singulars, "Vt": coef, "V": svd.V(coef), "Ut": svd.Ut(y), "U": svd.U(svd.Ut(y)),
            "svd_pinv": svd_pinv(svd, y, op.in_dim, real=not op.input_complex), "pinv": op.pinv(y)}


@pytest.mark.parametrize("name", SVD_OPERATORS)
def test_svd_paths_create_nothing_without_an_explicit_device(name):
    """Every operator family with an SVD: with the default device set to ``meta`` while the operator and its
    inputs stay on the CPU, the SVD (singular values, ``V``, ``V^T``, ``U``, ``U^T``), the SVD pseudo-inverse and
    ``pinv`` equal those of a normal run, on the CPU (a tensor created without ``device=`` would land on meta)."""
    from bayesinv.operators import make_operator

    op = make_operator(name, SHAPE, seed=0)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, *SHAPE, generator=g, dtype=torch.float64)
    y = op(torch.randn(2, *SHAPE, generator=g, dtype=torch.float64))
    reference = _svd_outputs(op, x, y)
    torch.set_default_device("meta")
    try:
        got = _svd_outputs(op, x, y)
    finally:
        torch.set_default_device(None)
    for key, value in reference.items():
        assert got[key].device.type == "cpu" and torch.equal(got[key], value), key


@pytest.mark.parametrize("name", ["denoise", "superres", "cs_fourier", "mri"])
def test_svd_of_an_operator_moved_to_another_device_stays_there(name):
    """Moved with ``.to``, an operator's SVD gives its singular values and every map on the new device. (Blur and
    dense matrices find their rank from the values, which ``meta`` tensors lack; the test above covers them.)"""
    from bayesinv.operators import make_operator

    op = copy.deepcopy(make_operator(name, SHAPE, seed=0)).to("meta")
    assert op.device.type == "meta"
    svd = op.svd()
    x = torch.empty(2, *SHAPE, dtype=torch.float64, device="meta")
    coef = svd.Vt(x)
    assert svd.singulars.device.type == "meta" and coef.device.type == "meta" and svd.V(coef).shape == x.shape
    with finite_checks(False):  # the check reads a value back, which a meta tensor has not
        y = op(x)
        assert svd.Ut(y).device.type == "meta" and op.pinv(y).device.type == "meta"


@pytest.mark.parametrize("name", ["denoise", "inpaint", "superres", "deblur", "cs_gaussian", "cs_bernoulli",
                                  "cs_fourier", "mri", "mri_multicoil", "phase_retrieval", "phase_cdp"])
def test_operator_calls_create_nothing_without_an_explicit_device(name):
    """Forward, adjoint, normal and pinv of every registry operator (fresh, so that the caches are built under
    the check) under a ``meta`` default device equal a normal run's, on the CPU."""
    from bayesinv.operators import make_operator

    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def calls(op):
        y = op(x)
        return [y] + ([op.adjoint(y), op.normal(x), op.pinv(y)] if op.linear else [])

    reference = calls(make_operator(name, SHAPE, seed=0))
    op = make_operator(name, SHAPE, seed=0)
    torch.set_default_device("meta")
    try:
        got = calls(op)
    finally:
        torch.set_default_device(None)
    assert all(g.device.type == "cpu" and torch.equal(g, r) for g, r in zip(got, reference, strict=True))
