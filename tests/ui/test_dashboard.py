"""The dashboard in a real headless Chromium, against a real `herald serve` and worker.

Each test acts as a person would: logs in through the form, clicks links and
buttons, and waits (Playwright's ``expect``, which retries until its timeout) for
what the page shows as it polls. Each page is screenshotted into the test's
output directory (``tmp_path / "<page>.png"``).
"""

from __future__ import annotations

import base64
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.support import SEED_ORDER, wait_for
from tests.ui.conftest import TOKEN, Herald, log_in

pytestmark = pytest.mark.integration

expect: Any
try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails in CI) with the reason
    expect = None


def shot(page: Any, tmp_path: Path, name: str) -> None:
    """The whole page as ``tmp_path/<name>.png``."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    assert (tmp_path / f"{name}.png").stat().st_size > 0


def session_data(value: str) -> str:
    """What a Flask session cookie carries, readable by anyone holding it (it is only
    signed): its base64 payload, decompressed when it starts with a dot."""
    compressed = value.startswith(".")
    payload = base64.urlsafe_b64decode(value.lstrip(".").split(".")[0] + "==")
    return (zlib.decompress(payload) if compressed else payload).decode()


def step(page: Any, task_id: str) -> Any:
    """The timeline entry of a task (its first visit)."""
    return page.locator(f'li.step[data-task="{task_id}"]').first


def test_login_refuses_a_bad_token_and_keeps_a_good_one_out_of_reach(
    page: Any, tmp_path: Path
) -> None:
    page.goto("/ui/events")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    shot(page, tmp_path, "login-refused")

    log_in(page)
    expect(page).to_have_url(re.compile(r"/ui/events$"))
    expect(page.locator("header .who")).to_have_text("token ui")
    assert TOKEN not in page.url
    assert TOKEN not in page.evaluate("document.cookie")
    cookies = page.context.cookies()
    assert cookies, "logged in without a session cookie?"
    for cookie in cookies:  # whatever the session keeps, no script of the page reads it
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
        carried = session_data(cookie["value"])  # signed, not encrypted: anyone can read it
        assert '"csrf"' in carried and TOKEN not in carried
    shot(page, tmp_path, "events")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto("/ui/events")
    expect(page).to_have_url(re.compile(r"/ui/login$"))


def test_the_seed_event_shows_both_executions_succeed_and_the_confirmation(
    page: Any, herald: Herald, tmp_path: Path
) -> None:
    sent = herald.send("order.created", SEED_ORDER)
    event_id = sent["event_id"]
    log_in(page)
    page.get_by_role("link", name=event_id).click()
    expect(page).to_have_url(re.compile(f"/ui/events/{event_id}$"))
    executions = page.locator("ul.executions li")
    expect(executions).to_have_count(2)
    for workflow in ("order-processor", "notification-sender"):  # the page refreshes itself
        expect(executions.filter(has_text=workflow).locator(".status")).to_have_text("succeeded")
    shot(page, tmp_path, "event")

    executions.filter(has_text="order-processor").get_by_role("link").click()
    expect(page.locator("#execution-status")).to_have_text("succeeded")
    confirmation = step(page, "send-confirmation")
    output = confirmation.locator("pre.output")
    expect(output).to_be_hidden()
    confirmation.locator("summary").click()
    expect(output).to_be_visible()
    expect(output).to_contain_text('"subject": "Order Confirmation - order_12345"')
    expect(output).to_contain_text('"to": "customer@example.com"')
    shot(page, tmp_path, "execution")
    started = {w["workflow_id"]: w["execution_id"] for w in sent["workflows"]}
    steps = herald.execution(started["order-processor"])["steps"]
    (sent_step,) = [s for s in steps if s["task_id"] == "send-confirmation"]
    expect(output).to_contain_text(sent_step["output"]["path"])


def test_replay_an_event_and_watch_its_new_executions(
    page: Any, herald: Herald, tmp_path: Path
) -> None:
    sent = herald.send("order.created", SEED_ORDER)
    first = {w["workflow_id"]: w["execution_id"] for w in sent["workflows"]}
    log_in(page)
    page.goto(f"/ui/events/{sent['event_id']}")
    deliveries = page.locator("tr.delivery")
    expect(deliveries.locator(".status")).to_have_text(["succeeded", "succeeded"])
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_have_text("Replay started.")
    for workflow, execution_id in first.items():  # each delivery now names its new execution
        row = deliveries.filter(has_text=workflow)
        expect(row.locator("td").nth(3)).to_have_text("2 (1 replayed)")
        expect(row.locator(".status")).to_have_text("succeeded")
        expect(row.get_by_role("link")).not_to_have_text(execution_id)
    expect(page.locator("#live")).to_have_attribute("data-finished", "yes")  # polling stopped
    listed = page.locator("ul.executions li")  # the replay's executions beside the first ones
    expect(listed).to_have_count(4)
    expect(listed.locator(".status")).to_have_text(["succeeded"] * 4)
    for execution_id in first.values():
        expect(listed.filter(has_text=execution_id)).to_have_count(1)
    shot(page, tmp_path, "event-replayed")


def test_cancel_a_running_execution(page: Any, herald: Herald, tmp_path: Path) -> None:
    release = tmp_path / "release"
    sent = herald.send("ui.slow", {"release": str(release)})
    execution_id = sent["workflows"][0]["execution_id"]
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    expect(step(page, "hold").locator(".status")).to_have_text("running")
    shot(page, tmp_path, "execution-running")

    asked: list[str] = []

    def answer(dialog: Any, yes: bool) -> None:
        asked.append(dialog.message)
        if yes:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, yes=False))  # nothing is sent
    page.get_by_role("button", name="Cancel").click()
    assert asked == [
        f"Cancel execution {execution_id}? Its running step finishes; nothing starts after it."
    ]
    assert herald.execution(execution_id)["status"] == "running"

    page.once("dialog", lambda dialog: answer(dialog, yes=True))
    page.get_by_role("button", name="Cancel").click()  # (the first click sent it: not there)
    assert len(asked) == 2
    expect(page.get_by_role("status")).to_have_text("Execution cancelled.")
    expect(page.locator("#execution-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert herald.execution(execution_id)["status"] == "cancelled"
    shot(page, tmp_path, "execution-cancelled")

    release.touch()  # the running step finishes, and starts nothing after it
    wait_for(
        "the held step to finish",
        lambda: herald.execution(execution_id)["steps"][0]["status"] != "running",
        timeout=30,
    )
    shown = herald.execution(execution_id)
    assert shown["status"] == "cancelled"
    assert [s["task_id"] for s in shown["steps"]] == ["hold"]
    held = step(page, "hold").locator(".status")  # the page polled on until the step ended
    expect(held).to_have_text(shown["steps"][0]["status"])
    expect(page.locator("li.step")).to_have_count(1)


def test_retry_a_failed_execution_once_fixed(page: Any, herald: Herald, tmp_path: Path) -> None:
    fix = tmp_path / "fix"
    sent = herald.send("ui.broken", {"fix": str(fix)})
    execution_id = sent["workflows"][0]["execution_id"]
    log_in(page)
    page.goto(f"/ui/executions/{execution_id}")
    expect(page.locator("#execution-status")).to_have_text("failed")
    broken = step(page, "needs-fix")
    broken.locator("summary").click()
    expect(broken.locator("pre.error")).to_contain_text("does not exist yet")
    shot(page, tmp_path, "execution-failed")

    fix.touch()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_have_text("Retry started from the failed step.")
    expect(page.locator("#execution-status")).to_have_text("succeeded")
    expect(page.locator('li.step[data-task="needs-fix"] > details > summary')).to_have_count(2)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    shown = herald.execution(execution_id)
    assert shown["status"] == "succeeded"
    assert [(s["task_id"], s["status"]) for s in shown["steps"]] == [
        ("prepare", "succeeded"),
        ("needs-fix", "failed"),
        ("needs-fix", "succeeded"),
    ]
    shot(page, tmp_path, "execution-retried")


def test_workflows_show_triggers_and_graphs_and_workers_the_live_worker(
    page: Any, herald: Herald, tmp_path: Path
) -> None:
    log_in(page)
    page.get_by_role("link", name="Workflows").click()
    shown = herald.call("GET", "/api/v1/workflows")["data"]["workflows"]
    assert len(shown) == 4
    for workflow in shown:
        section = page.locator(f"#wf-{workflow['id']}")
        expect(section.locator("table.triggers code").first).to_have_text(
            workflow["triggers"][0]["name"]
        )
        graph = section.locator("svg.graph")
        expect(graph).to_be_visible()
        expect(graph.locator("g.task")).to_have_count(len(workflow["tasks"]))
        box = graph.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30
    shot(page, tmp_path, "workflows")

    page.get_by_role("link", name="Workers").click()
    row = page.locator("table.workers tbody tr").filter(has_text="ui@localhost")
    expect(row.locator(".status")).to_have_text("alive")
    shot(page, tmp_path, "workers")
