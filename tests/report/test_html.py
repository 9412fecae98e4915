"""The HTML report: self-contained (every image an inline PNG), verdict and hallucination tables present."""

import base64
import html.parser
import json

import markupsafe
import pytest

from bayesinv import Gaussian, InverseProblem
from bayesinv.operators import Identity
from bayesinv.report import render_report
from bayesinv.studies import analyze_study, parse_study, resolve_prior, run_study


class _Collector(html.parser.HTMLParser):
    """Images (with the heading before them), tables (rows, caption, header cells), coloured cells."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.rows, self.links = [], {}, {}, []
        self.captions, self.header_cells, self.first_cells, self.coloured = {}, [], [], []
        self._table, self._heading, self._open, self._text, self._cell_index = None, "", None, "", 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append({**attrs, "heading": self._heading})
        if tag in ("link", "script", "a") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = 0
        if tag == "tr" and self._table:
            self.tables[self._table] += 1
            self._cell_index = 0
        if tag in ("th", "td") and self._table:
            if tag == "th":
                self.header_cells.append(attrs)
            if self._cell_index == 0 and self.tables[self._table] > 1:
                self.first_cells.append((tag, attrs))
            self._cell_index += 1
        if tag in ("h2", "h3", "caption") or (tag == "td" and attrs.get("class") in ("ok", "bad", "warn")):
            self._open, self._text = tag, ""

    def handle_data(self, data):
        if self._open:
            self._text += data

    def handle_endtag(self, tag):
        if tag == self._open:
            if tag in ("h2", "h3"):
                self._heading = self._text.strip()
            elif tag == "caption":
                self.captions[self._table] = self._text.strip()
            else:
                self.coloured.append(self._text.strip())
            self._open = None


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
def test_report_shows_no_absolute_path_and_is_accessible(report):
    path, analysis = report
    text = path.read_text()
    study_folder = str(path.parent.resolve())
    assert study_folder not in text and study_folder not in path.with_name("report.json").read_text()
    assert analysis["study"]["spec"].startswith("/")  # the analysis holds an absolute path; the page does not
    assert "<code>study.toml</code>" in text
    page = _Collector()
    page.feed(text)
    # alt texts say what the figure shows, not the section title
    for img in page.images:
        assert img["alt"] != img["heading"] and len(img["alt"]) > 60, img["alt"]
    assert len({img["alt"] for img in page.images}) == len(page.images)
    # every table has a caption, every header cell a scope, every body row a row header
    assert set(page.captions) == set(page.tables) and all(page.captions.values())
    assert page.header_cells and all(cell.get("scope") in ("col", "row") for cell in page.header_cells)
    assert page.first_cells and all(tag == "th" and attrs.get("scope") == "row" for tag, attrs in page.first_cells)
    # colour is never the only carrier of a verdict
    words = ("calibrated", "over-confident", "under-confident", "no intervals", "point estimate")
    assert page.coloured and all(any(w in cell for w in words) for cell in page.coloured), page.coloured


def test_missing_analysis_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `bayesinv calibrate`"):
        render_report(tmp_path)
