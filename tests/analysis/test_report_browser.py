"""report.html in a real browser: headless Chromium loads every image and nothing overflows the page.

Skipped where Chromium is not installed (``apt-get install chromium`` on Debian).
A script added to a copy of the report measures the page once it has loaded
and writes the result into the DOM, which ``--dump-dom`` prints.
"""

import html
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

CHROMIUM = shutil.which("chromium")
WIDTH = 800  # px: headless Chromium's default window, where the first table used to overflow

CHECK = """
<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  // An element sticks out if it ends right of the viewport, or its content is wider than its box.
  const wide = [...document.body.querySelectorAll("table, pre, figure, img, p, li, h1, h2, h3")]
    .filter(e => e.getBoundingClientRect().right > width + 0.5 || e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.tagName} ${Math.round(e.getBoundingClientRect().right)}px: ${e.textContent.slice(0, 60)}`);
  const result = {width, pageWidth: document.documentElement.scrollWidth, images: images.length, broken, wide};
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def chromium_check(page, *, profile, width: int = WIDTH) -> dict:
    """Open ``page`` (a report.html) with the check script in headless Chromium; the script's result."""
    checked = page.resolve().with_name("report-checked.html")
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    match = re.search(r'<pre id="browser-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"no result in the DOM (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_every_image_loads_and_nothing_overflows_at_800_px(smoke_report, tmp_path):
    result = chromium_check(smoke_report / "report.html", profile=tmp_path / "profile")
    md = (smoke_report / "report.md").read_text()
    assert result["width"] <= WIDTH
    assert result["images"] == md.count("![") and not result["broken"], result
    assert result["pageWidth"] <= result["width"] and not result["wide"], result


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_check_sees_an_overflowing_table(tmp_path):
    """The browser check can fail: a wide table without the report's CSS is reported."""
    page = tmp_path / "report.html"
    cells = "".join(f"<td>column_number_{i}_without_spaces</td>" for i in range(30))
    page.write_text(f"<!doctype html><html><body><table><tr>{cells}</tr></table></body></html>")
    result = chromium_check(page, profile=tmp_path / "profile")
    assert result["pageWidth"] > result["width"] and result["wide"][0].startswith("TABLE")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_full_spaces_comparison_table_fits_800_px(tmp_path):
    """Regression: the first table was wider than the page; the full space varies 7 dimensions."""
    from analysis.document import Document
    from analysis.experiment import Experiment
    from analysis.reporting import _comparison_section
    from search import get_space

    full = get_space("full")
    rows = []
    for i, config in enumerate(full.grid()):
        if i % 37:  # 39 of the 1,440 configurations, every architecture and strategy among them
            continue
        failed = i % 3 == 0
        rows.append({"trial_id": f"a1b2c_{i:05d}", **{f"config/{k}": v for k, v in config.items()},
                     "config/min_balanced_accuracy": 0.6, "objective": -1.0 if failed else 0.9,
                     "kept_val_recall": 1.0 if failed else 0.9, "kept_val_precision": 0.61234,
                     "kept_val_balanced_accuracy": 0.5 if failed else 0.81234, "kept_val_auc": 0.91234,
                     "guard_passed": not failed, "kept_epoch": 7, "epochs": 12, "ended_by": "max_epochs"})
    trials = pd.DataFrame(rows)
    doc = Document("full")
    _comparison_section(doc, Experiment("x", trials, pd.DataFrame(), {}), trials)
    page = tmp_path / "report.html"
    page.write_text(doc.to_html())
    result = chromium_check(page, profile=tmp_path / "profile")
    assert result["pageWidth"] <= result["width"] and not result["wide"], result
