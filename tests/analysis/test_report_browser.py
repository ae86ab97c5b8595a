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
    checked = page.with_name("report-checked.html")
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
