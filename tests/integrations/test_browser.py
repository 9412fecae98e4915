"""A generated report opened in headless Chromium: loads without console errors, every image decodes
(in the browser and with PIL), links are relative, and the rendered layout is sane (blocks inside the
page column, no two blocks overlapping), checked on the DOM after load and on a screenshot."""

from __future__ import annotations

import base64
import html.parser
import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.report.helpers import tiny_report

pytestmark = pytest.mark.integrations
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "chrome-headless-shell", "google-chrome")
WIDTH = 1200

# Recorded from the first script of the page: console errors, failed loads, and after the load event
# each image's decoded size and every block's box, written into <pre id="probe"> for --dump-dom.
PROBE = """<script>
window.__errors = [];
const __error = console.error;
console.error = function (...args) { window.__errors.push(args.join(" ")); __error.apply(console, args); };
window.addEventListener("error", e => window.__errors.push(e.message || ("failed to load " + (e.target.src || "").slice(0, 40))), true);
window.addEventListener("load", () => {
  const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top + window.scrollY, b.right, b.bottom + window.scrollY]; };
  const out = {errors: window.__errors, scrollWidth: document.documentElement.scrollWidth,
    images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, box: box(i)})),
    blocks: [...document.querySelectorAll("h1, h2, h3, p, table, img")].map(e => ({tag: e.tagName, box: box(e)}))};
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    reason = ("no headless Chromium on PATH (tried " + ", ".join(BROWSERS) + "); .ci/run installs Debian's "
              "chromium-headless-shell with apt when it runs as root")
    if os.environ.get("BAYESINV_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " but BAYESINV_REQUIRE_BROWSER=1")
    pytest.skip(reason)


def _run(browser, *args, timeout=120):
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={WIDTH},900", *args]
    return subprocess.run(command, check=True, timeout=timeout, capture_output=True, text=True)


def _probe(browser, page, tmp_path) -> dict:
    text = page.read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    dom = _run(browser, "--virtual-time-budget=20000", "--dump-dom", probed.as_uri()).stdout
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    return json.loads(html.unescape(dom[start: dom.index("</pre>", start)]))


class _Attributes(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag == "img":
            self.images.append(attrs)


def _overlapping(blocks):
    found = []
    for i, a in enumerate(blocks):
        for b in blocks[i + 1:]:
            (l1, t1, r1, b1), (l2, t2, r2, b2) = a["box"], b["box"]
            if min(r1, r2) - max(l1, l2) > 1 and min(b1, b2) - max(t1, t2) > 1:
                found.append((a["tag"], b["tag"]))
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return tiny_report(tmp_path_factory.mktemp("browser"), "browser")[0]


def test_the_probe_catches_a_broken_image_and_a_console_error(tmp_path):
    browser = _browser()
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p>'
                    '<img alt="a" src="data:image/png;base64,iVBORw0KGgoAAAAN">'
                    '<script>console.error("boom")</script></body></html>')
    probe = _probe(browser, page, tmp_path)
    assert "boom" in probe["errors"]
    assert probe["images"] and probe["images"][0]["width"] == 0  # not decoded


def test_report_in_headless_chromium(report, tmp_path):
    browser = _browser()
    text = report.read_text()
    page = _Attributes()
    page.feed(text)
    # links are relative or inline: nothing absolute, nothing on the network
    for url in page.urls:
        assert not url.startswith(("/", "file:", "http:", "https:", "//")), url[:60]
    # every inline image decodes with PIL
    from PIL import Image
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1], validate=True))) as decoded:
            decoded.load()
            assert decoded.size[0] > 50 and decoded.size[1] > 50
    # in the browser: no console errors, every image decoded at its PNG size, blocks laid out without overlap
    probe = _probe(browser, report, tmp_path)
    assert probe["errors"] == []
    assert len(probe["images"]) == len(page.images) >= 8
    for img in probe["images"]:
        assert img["complete"] and img["width"] > 50 and img["height"] > 50
    assert probe["scrollWidth"] <= WIDTH  # nothing wider than the window
    assert _overlapping(probe["blocks"]) == []
    for block in probe["blocks"]:
        left, _, right, _ = block["box"]
        assert left >= 0 and right <= WIDTH, block
    # the screenshot: ink inside the centred page column (max-width 1100 px + padding), none outside
    shot = tmp_path / "report.png"
    _run(browser, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri())
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, WIDTH) and pixels.std() > 10  # not blank
    ink = (pixels < 250).any(axis=0)
    columns = np.flatnonzero(ink)
    margin = (WIDTH - 1100) // 2
    assert columns.min() >= margin - 2 and columns.max() <= WIDTH - margin + 2, (columns.min(), columns.max())
