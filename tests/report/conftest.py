"""Layout check shared by the report tests: text that overlaps another panel or another text."""

from __future__ import annotations

import pytest


def _texts(ax):
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
    return [t for t in texts if t.get_visible() and t.get_text()]


def _overlap(a, b, tol: float) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _figure_overlaps(fig, tol: float = 1.0) -> list[tuple[str, str]]:
    """Pairs ``(text, what it overlaps)``: a title, axis label or tick label of one axes (colour bars
    included) that covers the plotting area of another axes or a text of another axes by more than
    ``tol`` pixels each way. Empty for a clean layout."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    boxes = [(ax, text, text.get_window_extent(renderer)) for ax in axes for text in _texts(ax)]
    found = []
    for ax, text, box in boxes:
        for other in axes:
            if other is not ax and _overlap(box, other.get_window_extent(renderer), tol):
                found.append((text.get_text(), f"panel {other.get_title() or other.get_label()!r}"))
    for i, (ax, text, box) in enumerate(boxes):
        for other, other_text, other_box in boxes[i + 1:]:
            if other is not ax and _overlap(box, other_box, tol):
                found.append((text.get_text(), f"text {other_text.get_text()!r}"))
    return found


@pytest.fixture
def figure_overlaps():
    """:func:`_figure_overlaps` as a fixture (tests in this folder are not a package)."""
    return _figure_overlaps
