"""The backtest report opens in a real browser with no network: headless Chromium.

``make chromium`` (part of ``make install``) installs it from apt when missing.
The page must need nothing from outside itself: its charts are PNG ``data:``
URIs, and a Content-Security-Policy of ``default-src 'none'`` would block
anything else. The screenshot must show the charts' colours, which only the
decoded images carry (the page itself is black on white).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tools.feedgen import generate
from tools.report import BASE_COLOR, NEW_COLOR
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"


def _rgb(name: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(name)
    return round(r * 255), round(g * 255), round(b * 255)


def test_the_report_renders_in_headless_chromium_with_no_network(tmp_path: Path):
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} not found: run `make chromium` (apt-get install -y chromium)")
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(
        b"".join((m.value or b"") + b"\n" for m in generate(4000, seed=9, fraud_share=0.02))
    )
    new = tmp_path / "new.yaml"
    data = yaml.safe_load(DEFAULT_RULES.read_text())
    data.update(version="festive", limits={"daily_coins_per_user": 60})
    new.write_text(yaml.safe_dump(data))
    report = tmp_path / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "simulate",
            "--rules",
            str(new),
            "--baseline",
            str(DEFAULT_RULES),
            "--input",
            str(feed),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    page = report.read_text(encoding="utf-8")
    # Self-contained: every image inline, nothing fetched, no personal data.
    sources = re.findall(r'src="([^"]{0,40})', page)
    assert len(sources) == 7 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=\"(https?:)?//", page)
    assert "default-src 'none'" in page
    assert "@" not in page

    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,4000",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert shot.exists(), "Chromium wrote no screenshot"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 4000)
    colours = image.getcolors(maxcolors=1 << 20) or []
    counts = {rgb: n for n, rgb in colours}
    # The charts drew: many pixels of the new and baseline colours, many colours overall.
    assert counts.get(_rgb(NEW_COLOR), 0) > 2000, "no chart in the new colour was drawn"
    assert counts.get(_rgb(BASE_COLOR), 0) > 2000, "no chart in the baseline colour was drawn"
    assert len(counts) > 200
