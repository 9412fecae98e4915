"""The main job: the demo's studies are well-formed, and a tiny demo writes a report that links both studies."""

from __future__ import annotations

import base64
import re

import pytest

from bayesinv.demo import DEMO_SIZES, demo_studies, run_demo
from bayesinv.operators import OPERATORS
from bayesinv.samplers import SAMPLERS
from bayesinv.samplers.baselines import BASELINES


@pytest.mark.parametrize("size", sorted(DEMO_SIZES))
def test_demo_studies_use_registered_operators_and_samplers(size):
    specs = demo_studies(size)
    assert [s.operator for s in specs] == ["deblur", "mri"]
    for spec in specs:
        assert spec.operator in OPERATORS and spec.prior == "phantom32"
        assert spec.num_calibration == spec.num_test == DEMO_SIZES[size]["cases"]
        for sampler in spec.samplers:
            assert sampler.sampler in SAMPLERS or sampler.sampler in BASELINES
            assert sampler.max_cases is None or sampler.max_cases <= spec.num_test


def test_demo_rejects_an_unknown_size():
    with pytest.raises(ValueError, match="size must be one of"):
        demo_studies("huge")


@pytest.mark.slow
def test_tiny_demo_writes_an_index_with_both_studies(tmp_path):
    index = run_demo(tmp_path / "demo", size="tiny", progress=False)
    html = index.read_text()
    for label in ("deblur", "mri4x"):
        assert f'href="{label}/report.html"' in html
        assert (tmp_path / "demo" / label / "report.html").exists()
    for sampler in ("ddrm", "dirac", "tv", "unrolled"):
        assert f"<td>{sampler}</td>" in html
    assert "<th>hallucination audit</th>" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert images and all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    # resumable: a second call recomputes nothing and gives the same page
    assert run_demo(tmp_path / "demo", size="tiny", progress=False).read_text() == html
