"""scikit-image test images: every listed one loads offline, gray, square, in [0, 1], matching a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch

from bayesinv.data import SKIMAGE_IMAGES, load_image, load_images


@pytest.mark.parametrize("name", SKIMAGE_IMAGES)
def test_every_listed_image_loads_offline_in_the_unit_range(name):
    image = load_image(name, 32)
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert float(image.min()) == 0.0 and float(image.max()) == 1.0


def test_camera_equals_the_direct_resize():
    raw = skimage.data.camera().astype(np.float64) / 255.0  # 512 x 512 gray, already square
    want = skimage.transform.resize(raw, (64, 64), anti_aliasing=True)
    want = (want - want.min()) / (want.max() - want.min())
    np.testing.assert_allclose(load_image("camera", 64, dtype=torch.float64)[0].numpy(), want, rtol=1e-12, atol=1e-12)


def test_batch_and_errors():
    batch = load_images(["camera", "astronaut"], size=16, dtype=torch.float64)
    assert batch.shape == (2, 1, 16, 16) and batch.dtype == torch.float64
    assert load_images(size=8).shape == (6, 1, 8, 8)
    with pytest.raises(ValueError, match="brain"):
        load_image("brain")
    with pytest.raises(ValueError, match="size"):
        load_image("camera", 1)
