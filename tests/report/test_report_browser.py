"""The report in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run) renders
reports/index.html; the test reads the rendered DOM and the screenshot's pixels. The screenshot stays in the test's
temporary folder (pytest keeps the last runs' folders): a test never writes into the user's reports/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import cast

import pytest

from clue.report.html import COLORS, STROKES
from clue.report.render import write_reports
from tests.helpers.report_data import recorded_results, run_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]

if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("chromium is not installed: .ci/run must install Debian's chromium package", pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={user_data}", *args], capture_output=True, text=True, timeout=120
    )


def test_browser_renders_table_and_plot(tmp_path: Path) -> None:
    from PIL import Image

    records = recorded_results()
    html_path, _ = write_reports(tmp_path, run_of(records))
    url = html_path.as_uri()
    dom = chromium("--dump-dom", url, user_data=tmp_path / "profile").stdout
    assert dom.count('<td class="cell verdict-') == 6
    assert dom.count('<circle class="point"') == 3 and "<svg" in dom

    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1400,1100", url, user_data=tmp_path / "profile2")
    assert shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    pixels = image.load()
    assert pixels is not None
    width, height = image.size
    counts: dict[tuple[int, int, int], int] = {}
    for y in range(0, height, 2):
        for x in range(0, width, 2):
            pixel = cast(tuple[int, int, int], pixels[x, y])
            counts[pixel] = counts.get(pixel, 0) + 1

    def rgb(hex_color: str) -> tuple[int, int, int]:
        return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]

    # painted, not just present in the file: the verdict colours fill table cells, the plot draws its points
    for verdict in ("regressed", "inconclusive", "improved"):
        assert counts.get(rgb(COLORS[verdict]), 0) > 500, verdict
    assert counts.get(rgb(STROKES["regressed"]), 0) > 20


MEASURE = """<script>
window.addEventListener("load", () => {
  const texts = [...document.querySelectorAll("#delta-plot text[text-anchor=end]")];
  const labels = texts.filter(t => t.textContent.includes(" · "));
  document.body.dataset.labelLefts = labels.map(t => Math.floor(t.getBBox().x)).join(",");
});
</script>"""


def test_plot_labels_fit_a_long_model_name(tmp_path: Path) -> None:
    """A 40-character model name was clipped on the left ("umcode · smol-lora-merged"): the label margin now grows
    with the longest label. The rendered labels' bounding boxes are measured in the browser."""
    import json

    long_name = "clinical-llama3-8b-lora-r16-epoch3-final"
    assert len(long_name) == 40
    records = json.loads(json.dumps(recorded_results()).replace('"candidate"', json.dumps(long_name)))
    html_path, _ = write_reports(tmp_path, run_of(records))
    probe = tmp_path / "measure.html"
    probe.write_text(html_path.read_text().replace("</body>", MEASURE + "</body>"))
    dom = chromium("--dump-dom", "--virtual-time-budget=3000", probe.as_uri(), user_data=tmp_path / "profile").stdout
    lefts = [int(v) for v in dom.split('data-label-lefts="')[1].split('"')[0].split(",")]
    assert len(lefts) == 3 and long_name in dom
    assert min(lefts) >= 0, lefts
