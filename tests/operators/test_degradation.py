"""Dirac degradation schedules: A_0 = I, A_1 = the problem's operator, every A_t a valid operator, batching in t."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from bayesinv.operators.blur import Blur
from bayesinv.operators.degradation import (BlurDegradation, GeometricNoise, InpaintDegradation, MaskOperator,
                                            blur_severity_schedule, degradation_from_config)
from bayesinv.operators.inpaint import Inpaint, box_mask, random_mask

_spec = importlib.util.spec_from_file_location("registry_checks", Path(__file__).with_name("registry_checks.py"))
registry_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(registry_checks)

SHAPE = (1, 8, 8)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _blur():
    return BlurDegradation(SHAPE, 1.5, size=5)


def _inpaint(order="random"):
    return InpaintDegradation(SHAPE, random_mask(SHAPE[1:], 0.5, _gen(3)), order=order, seed=1)


def _box():
    return InpaintDegradation(SHAPE, box_mask(SHAPE[1:], (2, 1, 4, 5)), order="center_out")


@pytest.mark.parametrize("make", [_blur, _inpaint, _box])
def test_time_zero_is_identity_and_time_one_is_target(make):
    deg = make()
    x = torch.randn(3, *SHAPE, generator=_gen(), dtype=torch.float64)
    assert torch.equal(deg.apply(x, 0.0), x)
    eye = torch.eye(64, dtype=torch.float64)
    torch.testing.assert_close(deg.operator_at(0.0).to_matrix(), eye, rtol=0, atol=1e-14)  # FFT round-off
    if deg.kind == "blur":
        target = Blur.gaussian(SHAPE, 1.5, 5)
        assert torch.equal(deg.operator_at(1.0).to_matrix(), target.to_matrix())
        assert torch.equal(deg.apply(x, 1.0), target(x))
    else:
        for output in ("image", "pixels"):
            target = Inpaint(SHAPE, deg.observed, output=output)
            matrix = target.to_matrix()
            assert torch.equal(deg.operator_at(1.0).to_matrix(), matrix.T @ matrix)  # S^T S (= S for "image")
            deg.check_target(target)
        assert torch.equal(deg.apply(x, 1.0), x * deg.observed)


@pytest.mark.parametrize("make", [_blur, _inpaint, _box])
@pytest.mark.parametrize("t", [0.0, 0.13, 0.5, 0.77, 1.0])
def test_every_operator_of_the_schedule_passes_the_registry_checks(make, t):
    registry_checks.check_linear_operator(make().operator_at(t), _gen(5))


@pytest.mark.parametrize("make", [_blur, _inpaint, _box])
def test_batched_times_equal_one_operator_per_item(make):
    deg = make()
    x = torch.randn(4, *SHAPE, generator=_gen(1), dtype=torch.float64)
    times = torch.tensor([0.0, 0.3, 0.71, 1.0], dtype=torch.float64)
    out = deg.apply(x, times)
    for i, t in enumerate(times.tolist()):
        torch.testing.assert_close(out[i : i + 1], deg.operator_at(t)(x[i : i + 1]), rtol=0, atol=1e-12)


def test_blur_width_follows_knots_and_is_monotone():
    deg = BlurDegradation(SHAPE, 2.0, size=7, knots=[(0, 0), (0.5, 0.25), (1, 1)])
    assert deg.width(0.25).item() == pytest.approx(0.25)
    assert deg.width(0.75).item() == pytest.approx(2.0 * (0.25 + 0.5 * 0.75))
    assert deg.operator_at(0.4).kernel.shape == (7, 7)
    with pytest.raises(ValueError, match="knots"):
        BlurDegradation(SHAPE, 2.0, knots=[(0, 0), (0.5, 0.7), (0.6, 0.2), (1, 1)])
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        deg.apply(torch.zeros(1, *SHAPE), 1.5)


def test_severity_schedule_makes_severity_linear():
    images = torch.rand(16, *SHAPE, generator=_gen(2), dtype=torch.float64)
    knots = blur_severity_schedule(images, 1.5, size=7, num_knots=11)
    deg = BlurDegradation(SHAPE, 1.5, size=7, knots=knots)
    full = ((deg.apply(images, 1.0) - images) ** 2).sum((1, 2, 3)).mean()
    for t, _ in knots:
        sev = ((deg.apply(images, t) - images) ** 2).sum((1, 2, 3)).mean() / full
        assert float(sev) == pytest.approx(t, abs=5e-3)


def test_inpaint_mask_fades_groups_in_order():
    observed = torch.ones(1, 3, 3, dtype=torch.bool)
    observed[0, 0, :2] = False  # two missing pixels -> two groups in random order
    deg = InpaintDegradation((1, 3, 3), observed, order="random", seed=0)
    assert deg.num_groups == 2
    first = int(deg.groups[0, 0, 1] == 0)  # which of the two fades first (column index)
    m = deg.mask(0.25)
    assert float(m[0, 0, first]) == pytest.approx(0.5) and float(m[0, 0, 1 - first]) == 1.0
    m = deg.mask(0.75)
    assert float(m[0, 0, first]) == 0.0 and float(m[0, 0, 1 - first]) == pytest.approx(0.5)
    assert float(m[0, 1:].min()) == 1.0


def test_center_out_removes_the_box_from_its_centre():
    deg = InpaintDegradation((1, 7, 7), box_mask((7, 7), (1, 1, 5, 5)), order="center_out")
    assert deg.num_groups == 3  # Chebyshev rings 0, 1, 2 around the centre (3, 3)
    m = deg.mask(1 / 3)
    assert float(m[0, 3, 3]) == 0.0 and float(m[0, 2, 3]) == 1.0


def test_check_target_rejects_another_operator():
    with pytest.raises(ValueError, match="differs from the model's blur degradation"):
        _blur().check_target(Blur.gaussian(SHAPE, 1.0, 5))
    with pytest.raises(ValueError, match="differs from the model's inpaint"):
        _inpaint().check_target(Inpaint(SHAPE, random_mask(SHAPE[1:], 0.5, _gen(99))))
    with pytest.raises(ValueError, match="not the model's blur degradation"):
        _blur().check_target(Blur.gaussian((1, 4, 4), 1.5, 3))


def test_embedding_a_pixel_measurement_has_the_process_law():
    deg = _inpaint()
    op = Inpaint(SHAPE, deg.observed, output="pixels")
    x = torch.rand(1, *SHAPE, generator=_gen(4), dtype=torch.float64)
    y = op(x) + 0.05 * torch.randn(1, *op.out_shape, generator=_gen(5), dtype=torch.float64)
    z = torch.randn(20000, *SHAPE, generator=_gen(6), dtype=torch.float64)
    y1 = deg.embed_measurement(y, op, 0.05, z)
    observed = deg.observed.expand_as(y1)
    assert torch.equal(y1[:, deg.observed], op.adjoint(y).expand_as(y1)[:, deg.observed])
    missing = y1[~observed].reshape(20000, -1)
    assert float(missing.mean()) == pytest.approx(0.0, abs=4 * 0.05 / math.sqrt(missing.numel()))
    assert float(missing.std()) == pytest.approx(0.05, rel=0.01)


def test_mask_operator_soft_values_and_config_round_trip():
    deg = _inpaint()
    op = deg.operator_at(0.4)
    assert isinstance(op, MaskOperator)
    assert float(op.mask.min()) >= 0 and float(op.mask.max()) <= 1
    for d in (deg, _box(), _blur()):
        again = degradation_from_config(d.config())
        x = torch.randn(2, *SHAPE, generator=_gen(8), dtype=torch.float64)
        assert torch.equal(again.apply(x, 0.37), d.apply(x, 0.37))


def test_geometric_noise():
    noise = GeometricNoise.create(0.01, 0.05)
    assert noise.std(0.0) == pytest.approx(0.01) and noise.std(1.0) == pytest.approx(0.05)
    assert noise.std(0.5) == pytest.approx(math.sqrt(0.01 * 0.05))
    with pytest.raises(ValueError, match="sigma_min"):
        GeometricNoise.create(0.0, 0.05)
