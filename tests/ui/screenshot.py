"""The README's screenshot of the dashboard: ``python -m tests.ui.screenshot [PATH]``.

Runs ``herald dev`` on a copy of the examples (SQLite, in-process broker: no
service needed), sends the seed's event, and photographs the order-processor
execution's timeline with its confirmation step open, at 1280x800, into PATH
(default ``docs/img/dashboard.png``). The tests never write that file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support import SEED_ORDER, free_port
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, REPO

TOKEN = "test-token"  # herald dev's own when HERALD_API_TOKENS is unset, as in the README


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else REPO / "docs" / "img" / "dashboard.png"
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "examples"
        shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns(".outbox", ".herald"))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        log = (Path(scratch) / "dev.log").open("wb")
        herald = Path(sys.executable).parent / "herald"
        dev = subprocess.Popen(
            [str(herald), "dev", "--project", str(project), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(url)
            event_id = _send(url)
            _photograph(url, event_id, target)
        finally:
            dev.terminate()
            dev.wait(15)
            log.close()
    print(f"wrote {target}")
    return 0


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit("herald dev did not answer /health within a minute")


def _send(url: str) -> str:
    body = json.dumps({"name": "order.created", "payload": SEED_ORDER}).encode()
    request = urllib.request.Request(
        url + "/api/v1/events",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        event_id: str = json.loads(answer.read())["event_id"]
        return event_id


def _photograph(url: str, event_id: str, target: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 800})
        page.goto("/ui/login")
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"/ui/events/{event_id}")
        row = page.locator("ul.executions li").filter(has_text="order-processor")
        expect(row.locator(".status")).to_have_text("succeeded", timeout=30_000)
        row.get_by_role("link").click()
        page.locator('li.step[data-task="send-confirmation"] summary').click()
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target))
        browser.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
