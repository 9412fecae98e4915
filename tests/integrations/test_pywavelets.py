"""The Haar transform of the wavelet baseline equals PyWavelets' (``haar``, periodization, pyramid layout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bayesinv.samplers.baselines.wavelet import haar_forward, haar_inverse

pytestmark = pytest.mark.integrations


@pytest.fixture(scope="module")
def pywt(require):
    return require("pywt", "wavelets")


@pytest.mark.parametrize("levels,shape", [(1, (6, 10)), (2, (16, 16)), (3, (32, 24)), (4, (16, 32))])
def test_haar_forward_and_inverse_equal_pywavelets(pywt, levels, shape):
    images = np.random.default_rng(levels).normal(size=(2, 3, *shape))
    ours = haar_forward(torch.from_numpy(images), levels).numpy()
    for b in range(2):
        for c in range(3):
            coeffs = pywt.wavedec2(images[b, c], "haar", level=levels, mode="periodization")
            reference, slices = pywt.coeffs_to_array(coeffs)
            np.testing.assert_allclose(ours[b, c], reference, rtol=0, atol=1e-12)
            back = pywt.waverec2(pywt.array_to_coeffs(ours[b, c], slices, output_format="wavedec2"), "haar",
                                 mode="periodization")
            np.testing.assert_allclose(back, images[b, c], rtol=0, atol=1e-12)
    np.testing.assert_allclose(haar_inverse(torch.from_numpy(ours), levels).numpy(), images, rtol=0, atol=1e-12)
