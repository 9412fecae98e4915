"""Super-resolution, compressed sensing and inpainting against direct numpy computations and known distributions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from bayesinv.operators import (Inpaint, SubsampledFourier, SuperResolution, bernoulli_sensing, box_mask,
                                gaussian_sensing, make_operator, random_mask)
from bayesinv.operators.superres import block_basis


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_superres_is_the_block_mean_and_its_pinv_repeats_pixels(factor, generator):
    x = torch.randn(2, 3, 8, 12, generator=generator, dtype=torch.float64)
    op = SuperResolution((3, 8, 12), factor)
    want = x.numpy().reshape(2, 3, 8 // factor, factor, 12 // factor, factor).mean(axis=(3, 5))
    np.testing.assert_allclose(op(x).numpy(), want, rtol=1e-12)
    y = op(x)
    np.testing.assert_allclose(op.pinv(y).numpy(), np.repeat(np.repeat(y.numpy(), factor, -2), factor, -1), rtol=1e-12)
    assert torch.equal(op.svd().singulars, torch.full((op.out_dim,), 1.0 / factor, dtype=torch.float64))


def test_block_basis_is_orthonormal_with_a_constant_first_vector():
    q = block_basis(3).numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(9), atol=1e-14)
    np.testing.assert_allclose(q[:, 0], np.full(9, 1 / 3), rtol=1e-14)


def test_gaussian_sensing_entries_are_normal_with_variance_one_over_m():
    op = gaussian_sensing((1, 16, 16), 64, torch.Generator().manual_seed(0))
    entries = op.matrix.numpy().ravel() * np.sqrt(64)
    assert scipy.stats.kstest(entries, "norm").pvalue > 1e-3
    assert abs(entries.var() - 1) < 5 * np.sqrt(2 / entries.size)


def test_bernoulli_sensing_entries_are_signs_over_sqrt_m():
    op = bernoulli_sensing((1, 16, 16), 64, torch.Generator().manual_seed(0))
    entries = op.matrix.numpy().ravel() * 8
    assert set(np.unique(entries)) == {-1.0, 1.0}
    assert scipy.stats.binomtest(int((entries > 0).sum()), entries.size).pvalue > 1e-3


def test_subsampled_fourier_returns_the_chosen_dft_coefficients(generator):
    op = SubsampledFourier.random((2, 6, 5), 7, generator)
    x = torch.randn(3, 2, 6, 5, generator=generator, dtype=torch.float64)
    k = np.fft.fftshift(np.fft.fft2(x.numpy(), norm="ortho"), axes=(-2, -1))
    mask = op.mask.numpy()
    assert mask.sum() == 14 and (mask[0] == mask[1]).all()
    np.testing.assert_allclose(op(x).numpy(), k.reshape(3, -1)[:, mask.ravel()], rtol=1e-12, atol=1e-13)
    assert make_operator("cs_fourier", (1, 8, 8), ratio=0.25).out_shape == (16,)


def test_inpaint_layouts_and_masks(generator):
    mask = random_mask((2, 4, 5), 0.4, generator)
    assert int((~mask).sum()) == 16
    x = torch.randn(2, 2, 4, 5, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(Inpaint((2, 4, 5), mask)(x), x * mask)
    torch.testing.assert_close(Inpaint((2, 4, 5), mask, output="pixels")(x), x[:, mask])
    shared = random_mask((4, 5), 0.5, generator)
    torch.testing.assert_close(Inpaint((2, 4, 5), shared)(x), x * shared)
    box = box_mask((2, 6, 6), (1, 2, 3, 4))
    assert int((~box).sum()) == 2 * 12 and not bool(box[:, 1:4, 2:6].any())
    op = make_operator("inpaint", (1, 16, 16), kind="box", fraction_missing=0.25)
    assert op.num_observed == 256 - 64
    assert make_operator("inpaint", (1, 10, 10), seed=1).num_observed == 50
