"""Tests of the lesion scan (bayesinv.diagnostics.lesion_scan) against hand-computed values."""

import pytest
import torch

from bayesinv.diagnostics.lesion_scan import DISC_EDGE, contrast_map, fit_disc, scan_lesions


def _plus(level: float, amplitude: float, size: int = 15, center: tuple[int, int] = (7, 7)) -> torch.Tensor:
    img = torch.full((1, 1, size, size), level, dtype=torch.float64)
    r, c = center
    for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        img[0, 0, r + dr, c + dc] = level + amplitude
    return img


@pytest.mark.parametrize("amplitude", [0.3, -0.25])
def test_blob_on_flat_background_gives_its_amplitude(amplitude):
    contrast, background, score = contrast_map(_plus(0.4, amplitude))
    assert float(contrast[0, 7, 7]) == pytest.approx(amplitude, abs=1e-12)
    assert float(background[0, 7, 7]) == pytest.approx(0.4, abs=1e-12)
    assert float(score[0, 7, 7]) == pytest.approx(abs(amplitude), abs=1e-12)
    found = scan_lesions(_plus(0.4, amplitude, center=(6, 8)))
    assert found.center[0].tolist() == [6, 8]
    assert float(found.contrast[0]) == pytest.approx(amplitude, abs=1e-12)


def test_a_line_scores_below_a_blob():
    img = torch.full((1, 1, 15, 15), 0.4, dtype=torch.float64)
    img[0, 0, 7, :] = 0.7  # a 1-px horizontal line: 3 of the 5 disc pixels, 4 of the 20 annulus pixels
    contrast, _, score = contrast_map(img)
    assert float(contrast[0, 7, 7]) == pytest.approx(0.3 * 3 / 5, abs=1e-12)
    # disc mean 0.58; the 0.9 quantile of the annulus is 0.7, its 0.1 quantile 0.4
    assert float(score[0, 7, 7]) == pytest.approx(max(0.58 - 0.7, 0.4 - 0.58), abs=1e-12)


def test_pixels_off_the_body_are_not_scanned():
    found = scan_lesions(_plus(0.0, 0.5))  # annulus median 0 < body_level
    assert float(found.score[0]) == 0.0


@pytest.mark.parametrize("radius,amplitude,level", [(1.0, 0.3, 0.4), (1.5, -0.35, 0.5), (2.0, 0.45, 0.3)])
def test_fit_disc_recovers_the_lesion_model(radius, amplitude, level):
    rows = torch.arange(20, dtype=torch.float64)
    dist = torch.sqrt((rows[:, None] - 9) ** 2 + (rows[None, :] - 11) ** 2)
    img = (level + amplitude * torch.sigmoid((radius - dist) / DISC_EDGE))[None, None]
    fit = fit_disc(img, torch.tensor([[9, 11]]))
    assert float(fit.radius[0]) == pytest.approx(radius, abs=1e-9)
    assert float(fit.contrast[0]) == pytest.approx(amplitude, abs=1e-9)
    assert float(fit.background[0]) == pytest.approx(level, abs=1e-9)
    assert float(fit.rms[0]) < 1e-9


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="images must be"):
        contrast_map(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="radius"):
        contrast_map(torch.zeros(1, 1, 8, 8), radius=2.5)
    with pytest.raises(ValueError, match="surround_quantile"):
        contrast_map(torch.zeros(1, 1, 8, 8), surround_quantile=0.2)
    with pytest.raises(ValueError, match="centers"):
        fit_disc(torch.zeros(2, 1, 8, 8), torch.zeros(3, 2))
