"""deepinv interop: from_deepinv / to_deepinv compute the same A and A^T as deepinv's own physics (float64)."""

from __future__ import annotations

import pytest
import torch

from bayesinv.interop.deepinv import CentredImageMRI, channels_to_complex, complex_to_channels, from_deepinv, to_deepinv
from bayesinv.operators import MRI, Blur, Inpaint, MatrixOperator, cartesian_mask, gaussian_sensing, random_mask

pytestmark = pytest.mark.integrations
F64 = torch.float64
SHAPE = (3, 12, 10)


@pytest.fixture(scope="module")
def dinv(deepinv_module):
    return deepinv_module


def _images(shape, n=2, seed=0, dtype=F64):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_deepinv_version(dinv):
    assert tuple(int(p) for p in dinv.__version__.split(".")[:2]) >= (0, 5)


def test_blur_both_ways_with_an_asymmetric_kernel(dinv):
    kernel = torch.rand(5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)  # not symmetric: pins the centre
    kernel /= kernel.sum()
    physics = dinv.physics.BlurFFT(img_size=SHAPE, filter=kernel[None, None].clone())
    ours = from_deepinv(physics)
    assert isinstance(ours, Blur)
    x, y = _images(SHAPE), _images(SHAPE, seed=1)
    _close(ours(x), physics.A(x))
    _close(ours.adjoint(y), physics.A_adjoint(y))
    back = to_deepinv(Blur(SHAPE, kernel))
    _close(back.A(x), Blur(SHAPE, kernel)(x))


def test_inpainting_both_ways(dinv):
    mask = random_mask((12, 10), 0.4, torch.Generator().manual_seed(2))
    physics = dinv.physics.Inpainting(img_size=SHAPE, mask=mask.to(F64).expand(SHAPE).clone())
    ours = from_deepinv(physics)
    assert isinstance(ours, Inpaint)
    x = _images(SHAPE)
    _close(ours(x), physics.A(x))
    _close(ours.adjoint(x), physics.A_adjoint(x))
    _close(to_deepinv(Inpaint(SHAPE, mask)).A(x), Inpaint(SHAPE, mask)(x))


@pytest.mark.parametrize("size", [(16, 16), (15, 12)])  # odd sizes: the phase is not a sign
def test_single_coil_mri_both_ways_in_the_two_channel_layout(dinv, size):
    mask = cartesian_mask(size, 3, generator=torch.Generator().manual_seed(3))
    physics = dinv.physics.MRI(mask=mask.to(F64))
    ours = from_deepinv(physics)
    assert isinstance(ours, CentredImageMRI) and ours.input_complex
    x = torch.complex(_images((1, *size)), _images((1, *size), seed=4))
    y = torch.complex(_images((1, *size), seed=5), _images((1, *size), seed=6)) * mask
    _close(complex_to_channels(ours(x)), physics.A(complex_to_channels(x)))
    _close(complex_to_channels(ours.adjoint(y)), physics.A_adjoint(complex_to_channels(y)))
    _close(complex_to_channels(ours.pinv(y)), physics.A_dagger(complex_to_channels(y)))
    svd = ours.svd()  # V diag(S) U^T y reproduces the pseudo-inverse (unit singular values)
    coef = svd.Ut(y)[:, : svd.singulars.numel()] / svd.singulars
    full = torch.zeros(y.shape[0], ours.in_dim, dtype=coef.dtype)
    full[:, : coef.shape[1]] = coef
    _close(svd.V(full), ours.pinv(y))
    _close(to_deepinv(ours).A(complex_to_channels(x)), complex_to_channels(ours(x)))
    # a plain bayesinv MRI (image origin at index 0) goes over as a LinearPhysics with its own A
    plain = MRI((1, *size), mask, input_complex=True)
    back = to_deepinv(plain)
    _close(channels_to_complex(back.A(complex_to_channels(x))), plain(x))
    _close(channels_to_complex(back.A_adjoint(complex_to_channels(y))), plain.adjoint(y))
    assert not torch.allclose(plain(x), ours(x))  # the two conventions really differ


def test_compressed_sensing_both_ways(dinv):
    physics = dinv.physics.CompressedSensing(m=40, img_size=SHAPE, dtype=F64, rng=torch.Generator().manual_seed(5))
    ours = from_deepinv(physics)
    assert isinstance(ours, MatrixOperator)
    x, y = _images(SHAPE), _images((40,), seed=6)
    _close(ours(x), physics.A(x))
    _close(ours.adjoint(y), physics.A_adjoint(y))
    op = gaussian_sensing(SHAPE, 30, torch.Generator().manual_seed(7))
    back = to_deepinv(op)
    _close(back.A(x), op(x))
    _close(back.A_adjoint(op(x)), op.adjoint(op(x)))
    _close(back.A_dagger(op(x)), op.pinv(op(x)))


def test_unsupported_settings_are_named(dinv):
    with pytest.raises(TypeError, match="supports BlurFFT, Inpainting, MRI and CompressedSensing, got Denoising"):
        from_deepinv(dinv.physics.Denoising())
    with pytest.raises(ValueError, match="channelwise=True"):
        from_deepinv(dinv.physics.CompressedSensing(m=4, img_size=SHAPE, channelwise=True))
    with pytest.raises(ValueError, match="only binary"):
        from_deepinv(dinv.physics.Inpainting(img_size=SHAPE, mask=torch.full(SHAPE, 0.5)))
    from bayesinv.operators import Identity
    with pytest.raises(TypeError, match="supports Blur, Inpaint, MRI and MatrixOperator, got Identity"):
        to_deepinv(Identity(SHAPE))
