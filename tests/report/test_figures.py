"""Report figures: no label overlaps a neighbouring panel or another label (coverage maps' colour bars)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bayesinv.report import figures


@pytest.fixture
def captured(monkeypatch):
    """The figures the report functions build, kept open instead of turned into PNG bytes."""
    figs = []
    monkeypatch.setattr(figures, "to_png", lambda fig: figs.append(fig) or b"")
    yield figs
    for fig in figs:
        plt.close(fig)


def _old_coverage_maps(maps, level):
    """The coverage-map layout before the fix (colour bars in a plain grid), kept to show the check can fail."""
    fig, axes = figures._grid(len(maps))
    for ax, (label, m) in zip(axes, maps.items()):
        im = ax.imshow(m, cmap="RdBu", vmin=max(0.0, 2 * level - 1), vmax=1.0)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


@pytest.mark.parametrize("count", [1, 3, 5, 8])
def test_coverage_map_colour_bars_overlap_no_neighbouring_panel(captured, count, figure_overlaps):
    rng = np.random.default_rng(count)
    maps = {f"sampler {i} (guidance 1.0)": rng.uniform(0.75, 1.0, (16, 16)) for i in range(count)}
    figures.coverage_maps_figure(maps, 0.9)
    (fig,) = captured
    assert figure_overlaps(fig) == []
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "coverage"]
    assert len(bars) == count  # one labelled colour bar per map


def test_the_overlap_check_catches_the_old_coverage_map_layout(figure_overlaps):
    rng = np.random.default_rng(0)
    fig = _old_coverage_maps({f"sampler {i}": rng.uniform(0.75, 1.0, (16, 16)) for i in range(4)}, 0.9)
    try:
        found = figure_overlaps(fig)
    finally:
        plt.close(fig)
    assert any(what.startswith("panel 'sampler 1'") for _, what in found)


def test_lesion_figure_panels_do_not_overlap(captured, figure_overlaps):
    lesion = {"roc_fpr": [0, 0.2, 1], "roc_tpr": [0, 0.8, 1], "auc": 0.8, "ece": 0.1,
              "reliability": {"counts": [3, 0, 5], "bin_centres": [0.1, 0.5, 0.9], "observed": [0.2, 0.0, 0.8]}}
    figures.lesion_figure({"dps": {"lesion": lesion}, "ddrm": {"lesion": lesion}})
    (fig,) = captured
    assert figure_overlaps(fig) == []
