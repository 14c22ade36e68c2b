"""Open a report in Debian's headless Chromium, driven by playwright, from a file:// URL with networking disabled."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Everything that could reach a network off; a fresh profile per page (user_data_dir below).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-default-apps", "--no-first-run", "--disable-extensions"]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".state" / "test-artifacts" / "reports"  # git-ignored state directory


@dataclass(frozen=True)
class Opened:
    """What the browser saw: drawn charts (id -> width x height and element count), console errors, requests."""

    charts: dict[str, tuple[float, float, int]]
    console_errors: list[str]
    requests: list[str]
    screenshot: Path
    title: str


def open_report(html_file: Path, profile: Path, name: str) -> Opened:
    """Render ``html_file`` offline, record every request and console error, and save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/setup --dev (installs Debian's chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                        offline=True, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            context.on("request", lambda r: requests.append(r.url))
            page.goto(html_file.resolve().as_uri(), wait_until="load")
            charts = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('svg[data-chart]')].map(s => {
                const box = s.getBoundingClientRect();
                return [s.dataset.chart, [box.width, box.height, s.querySelectorAll('path, use, image').length]];
            }))""")
            title = page.title()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)
    return Opened({k: tuple(v) for k, v in charts.items()}, errors, requests, shot, title)
