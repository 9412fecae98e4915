"""The HTML report: self-contained (every image an inline PNG), verdict and hallucination tables present."""

import base64
import html.parser
import json
import shutil
import subprocess

import markupsafe
import pytest

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Identity
from bayesinv.report import render_report
from bayesinv.studies import analyze_study, parse_study, resolve_prior, run_study


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.rows, self.links = [], {}, {}, []
        self._table = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag in ("link", "script", "a") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = 0
        if tag == "tr" and self._table:
            self.tables[self._table] += 1


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    doc = {"name": "tiny-report", "seed": 1, "problem": {"operator": "denoise", "image_size": 8, "noise_sigma": 0.1},
           "prior": {"name": "phantom-gaussian"},
           "data": {"family": "ellipses", "num_calibration": 6, "num_test": 8, "num_ood": 2},
           "samplers": {"exact": {"sampler": "exact", "num_samples": 12},
                        "point": {"sampler": "exact", "num_samples": 1}}}
    spec = parse_study(doc, folder / "study.toml")
    problem = InverseProblem(Identity((1, 8, 8)), Gaussian(0.1), resolve_prior("phantom-gaussian", 8))
    results = run_study(spec, problem=problem, progress=False)
    analysis = analyze_study(spec, results, problem=problem, progress=False)
    return render_report(results), analysis


@pytest.mark.slow
def test_report_is_self_contained_html(report):
    path, analysis = report
    assert path.name == "report.html" and path.with_name("report.json").exists()
    assert json.loads(path.with_name("report.json").read_text())["samplers"].keys() == analysis["samplers"].keys()
    page = _Collector()
    page.feed(path.read_text())
    assert len(page.images) >= 8 and not page.links  # no external resources
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix) and img["alt"]
        assert base64.b64decode(img["src"][len(prefix):], validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    # one header row + one row per sampler
    assert page.tables["verdict"] == 1 + 2 and page.tables["recalibration"] == 1 + 2
    assert page.tables["hallucination-table"] >= 1 + 2 and page.tables["ood"] == 1 + 2
    text = path.read_text()
    for sampler, s in analysis["samplers"].items():
        assert str(markupsafe.escape(s["verdict"])) in text
        assert str(markupsafe.escape(analysis["hallucination"][sampler]["verdict"])) in text
    if any(h["lesion"] for h in analysis["hallucination"].values()):
        assert "Lesion audit: ROC and reliability" in text


@pytest.mark.slow
def test_screenshot_with_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("no headless chromium installed")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
                    "--window-size=1200,3000", report[0].as_uri()], check=True, timeout=60, capture_output=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_analysis_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `bayesinv calibrate`"):
        render_report(tmp_path)
