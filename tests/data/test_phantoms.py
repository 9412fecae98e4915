"""Phantoms: determinism, ranges, lesion masks, disjoint splits."""

import pytest
import torch

from bayesinv.data import ellipse_phantoms, insert_lesions, phantom_dataset, shepp_logan_phantoms


def test_deterministic_and_in_range():
    a = phantom_dataset("train", 32, 32, lesion_prob=0.5)
    b = phantom_dataset("train", 32, 32, lesion_prob=0.5)
    assert torch.equal(a.images, b.images)
    assert a.images.shape == (32, 1, 32, 32) and a.images.dtype == torch.float32
    assert float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    assert 0.05 < float((a.images > 0.05).float().mean()) < 0.95  # a body on a background


def test_splits_never_share_images():
    splits = [phantom_dataset(s, 200, 32).images.reshape(200, -1) for s in ("train", "calibration", "test")]
    for i in range(3):
        for j in range(i + 1, 3):
            assert torch.cdist(splits[i], splits[j]).min() > 1e-3


def test_lesion_masks_and_prevalence():
    g = torch.Generator().manual_seed(0)
    batch = ellipse_phantoms(2000, 32, generator=g, lesion_prob=0.3)
    assert abs(float(batch.has_lesion.float().mean()) - 0.3) < 0.04
    assert bool((batch.lesion_masks.flatten(1).any(1) == batch.has_lesion).all())
    centers = batch.lesion_centers[batch.has_lesion].long()
    idx = batch.has_lesion.nonzero()[:, 0]
    assert bool(batch.lesion_masks[idx, 0, centers[:, 0], centers[:, 1]].all())  # centre inside its mask
    assert torch.isnan(batch.lesion_centers[~batch.has_lesion]).all()


def test_lesion_changes_only_near_the_lesion():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    base = ellipse_phantoms(8, 32, generator=g1, lesion_prob=0.0).images
    support = torch.ones_like(base, dtype=torch.bool)
    out = insert_lesions(base, support, generator=g2, prob=1.0, radius=(1.5, 1.5))
    changed = (out.images - base).abs() > 1e-3
    dilated = torch.nn.functional.max_pool2d(out.lesion_masks.float(), 5, 1, 2) > 0
    assert not bool((changed & ~dilated).any())


def test_shepp_logan_and_errors():
    sl = shepp_logan_phantoms(3, 64, generator=torch.Generator().manual_seed(0))
    assert sl.images.shape == (3, 1, 64, 64) and float(sl.images.max()) > 0.5
    with pytest.raises(ValueError, match="unknown split"):
        phantom_dataset("validation", 2)
    with pytest.raises(ValueError, match="unknown phantom family"):
        phantom_dataset("test", 2, family="mnist")
