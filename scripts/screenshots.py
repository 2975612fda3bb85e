"""Screenshots of the Dagster UI for the README's "Reading the results", from a real `dagster dev` on the
demo instance, taken with Debian's Chromium driven by Playwright (`executable_path`, no browser download).
Not part of `make test`.

Usage: make demo && .venv/bin/pip install -e '.[docs]' && .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
# (file, page, metadata entry, open its plot): the decision tables and plots a reader opens first.
SHOTS = [
    ("comparison.png", "/assets/xstest/release_comparison?view=events&partition=gpt4", "comparison", False),
    ("comparison_plot.png", "/assets/xstest/release_comparison?view=events&partition=gpt4", "rates_plot", True),
    ("scorecard.png", "/assets/xstest/forecast_scorecard?view=events", "scorecard", False),
    ("scorecard_plot.png", "/assets/xstest/forecast_scorecard?view=events", "forecast_vs_observed", True),
    ("flagged_examples.png", "/assets/xstest/forecast_scorecard?view=events", "flagged_examples", False),
    ("rollout_decision.png", "/assets/xstest/rollout_decisions?view=events", "decisions", False),
]
# Without these Chromium spends its start-up on connections this machine's closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict[str, object]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r).get("data") or {}


def shoot(page: Page, url: str, entry: str, plot: bool, target: Path) -> None:
    page.goto(url)
    # A metadata entry is a table row whose first cell is its key.
    row = page.locator("tr", has=page.locator("td:first-child", has_text=entry)).first
    row.wait_for(timeout=60_000)
    row.scroll_into_view_if_needed()
    if not plot:
        # The metadata panel scrolls wide tables sideways: let the table take its full width for the picture.
        table = row.locator("td").nth(1).locator("table").first
        table.evaluate("t => { for (let e = t; e && e.tagName !== 'BODY'; e = e.parentElement) {"
                       " e.style.overflow = 'visible'; e.style.maxWidth = 'none'; } }")
        table.screenshot(path=str(target))
        return
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("img").first.wait_for(timeout=30_000)
    dialog.screenshot(path=str(target))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    home = Path(os.environ.get("DAGSTER_HOME", REPO / ".dagster_home"))
    if not (home / "dagster.yaml").exists():
        sys.exit(f"no demo instance at {home}: run `make demo` first")
    if not Path(args.chromium).exists():
        sys.exit(f"no Chromium at {args.chromium}: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DEPSIM_PRIVACY_KEY": os.environ.get("DEPSIM_PRIVACY_KEY", "demo-key")}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / "depsim-screenshots-dagster-dev.log"
    with open(log_path, "wb") as log:
        ui = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                               "-p", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 180
            while time.time() < deadline:
                try:
                    if graphql(port, "{ assetNodes { id } }").get("assetNodes"):
                        break
                except OSError:
                    pass
                time.sleep(2)
            else:
                sys.exit(f"dagster dev did not come up: see {log_path}")
            graphql(port, "mutation { setNuxSeen }")  # the "join the community" dialog would cover every page
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
                for name, url, entry, plot in SHOTS:
                    shoot(page, f"http://127.0.0.1:{port}{url}", entry, plot, args.out / name)
                    print(f"{args.out / name}  <- {url} [{entry}]")
                browser.close()
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(30)


if __name__ == "__main__":
    main()
