"""The dashboard's pages: events, one event, one execution, workflows, workers.

Each page asks the JSON API (:func:`app.ui.session.api`) and renders its
answer; an API refusal becomes a note on the page (a 403 says which scope the
token lacks), never a stack trace. Buttons post a form with the session's CSRF
token and are hidden when the token lacks the scope they need.
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from app.state import state
from app.ui import graph
from app.ui.session import api, check_csrf, csrf_token, current_token, may
from app.ui.timeline import duration, settled, stamp
from app.ui.timeline import steps as timeline_steps
from workflows.model import Workflow

#: the query parameters of GET /api/v1/events the filter form offers
EVENT_FILTERS = ("name", "status", "since", "until", "cursor")
#: an execution in one of these states changes no more: the page stops polling
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
#: a delivery in one of these states is still under way: the event page keeps polling
UNSETTLED = frozenset({"planned", "started"})
#: what each scope lets a token do, for the "this token cannot ..." notes
CANNOT = {
    "events:read": "read events",
    "events:replay": "replay events",
    "executions:read": "read executions",
    "executions:write": "cancel or retry executions",
    "workflows:read": "read workflows",
    "workers:read": "read the worker fleet",
}


def _login_required() -> BaseResponse | None:
    """Send a visitor without a valid session to the login page (static files are public)."""
    if request.endpoint in ("ui.login", "ui.static"):
        return None
    if current_token() is None:
        return redirect(url_for("ui.login"))
    if request.method == "POST":
        check_csrf()
    return None


def _context() -> dict[str, Any]:
    token = current_token()
    return {
        "csrf_token": csrf_token,
        "may": may,
        "token_name": token.name if token else None,
        "cannot": CANNOT,
        "pretty": pretty,
        "duration": duration,
        "stamp": stamp,
    }


def pretty(value: Any) -> str:
    """A JSON value indented for a ``<pre>`` (Jinja escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def _refused(status: int, body: dict[str, Any], scope: str) -> Response:
    """The page for an API refusal: which scope is missing, or the API's message."""
    error = body.get("error") or {}
    message = error.get("message", "the request failed")
    if status == 403:
        message = f"This token cannot {CANNOT.get(scope, scope)} (it lacks the scope {scope!r})."
    page = render_template("ui/refused.html", status=status, message=message)
    return Response(page, status=status)


def index() -> BaseResponse:
    return redirect(url_for("ui.events"))


def events() -> Response | str:
    """Events newest first, with the API's filters and its cursor for the next page."""
    query = {k: v for k in EVENT_FILTERS if (v := request.args.get(k, "").strip())}
    status, body = api("GET", "/events", query_string=query)
    if status != 200:
        return _refused(status, body, "events:read")
    data = body["data"]
    filters = {k: v for k, v in query.items() if k != "cursor"}
    return render_template(
        "ui/events.html",
        events=data["events"],
        filters=filters,
        next_cursor=data["next_cursor"],
        paged="cursor" in query,
    )


def event(event_id: str) -> Response | str:
    """One event: its payload, deliveries (filtered ones and why), executions, replays.

    While one of its executions runs, the page polls :func:`event_live`.
    """
    status, body = api("GET", f"/events/{event_id}")
    if status != 200:
        return _refused(status, body, "events:read")
    shown = body["data"]
    runs = _executions_of(event_id)
    return render_template(
        "ui/event.html", event=shown, executions=runs, settled=_settled(shown, runs)
    )


def event_live(event_id: str) -> Response:
    """The deliveries and executions fragment the event page swaps in while they run."""
    status, body = api("GET", f"/events/{event_id}")
    if status != 200:
        return _refused(status, body, "events:read")
    shown = body["data"]
    runs = _executions_of(event_id)
    page = render_template("ui/_event_live.html", event=shown, executions=runs)
    return _fragment(page, _settled(shown, runs))


def _executions_of(event_id: str) -> list[dict[str, Any]]:
    """Every execution the event started, replays included, newest first (those the token
    may read; none without ``executions:read``)."""
    status, body = api("GET", "/executions", query_string={"event_id": event_id, "limit": 200})
    return list(body["data"]["executions"]) if status == 200 else []


def _settled(shown: dict[str, Any], runs: list[dict[str, Any]]) -> bool:
    """Whether every delivery of the event and every execution it started has finished."""
    return all(d["state"] not in UNSETTLED for d in shown["deliveries"]) and all(
        r.get("status") in FINISHED for r in runs
    )


def _fragment(html: str, finished: bool) -> Response:
    """A polled fragment; ``X-Herald-Finished: yes`` tells the page to stop polling."""
    response = Response(html)
    response.headers["X-Herald-Finished"] = "yes" if finished else "no"
    response.headers["Cache-Control"] = "no-store"
    return response


def replay(event_id: str) -> BaseResponse:
    """Replay the event (every subscribed workflow, or only the failed ones)."""
    mode = "failed" if request.form.get("mode") == "failed" else "all"
    status, body = api("POST", f"/events/{event_id}/replay", json={"mode": mode})
    _flash_answer(status, body, "events:replay", "Replay started.")
    return redirect(url_for("ui.event", event_id=event_id))


def execution(execution_id: str) -> Response | str:
    """An execution's timeline; the page polls :func:`timeline` until it has settled."""
    status, body = api("GET", f"/executions/{execution_id}")
    if status != 200:
        return _refused(status, body, "executions:read")
    shown = body["data"]
    return render_template(
        "ui/execution.html",
        execution=shown,
        steps=timeline_steps(shown),
        finished=FINISHED,
        settled=settled(shown),
    )


def timeline(execution_id: str) -> Response:
    """The timeline fragment the execution page swaps in every second while it runs."""
    status, body = api("GET", f"/executions/{execution_id}")
    if status != 200:
        return _refused(status, body, "executions:read")
    shown = body["data"]
    page = render_template(
        "ui/_timeline.html", execution=shown, steps=timeline_steps(shown), finished=FINISHED
    )
    response = _fragment(page, settled(shown))
    response.headers["X-Herald-Status"] = shown["status"]
    return response


def cancel(execution_id: str) -> BaseResponse:
    status, body = api("POST", f"/executions/{execution_id}/cancel")
    _flash_answer(status, body, "executions:write", "Execution cancelled.")
    return redirect(url_for("ui.execution", execution_id=execution_id))


def retry(execution_id: str) -> BaseResponse:
    status, body = api("POST", f"/executions/{execution_id}/retry")
    _flash_answer(status, body, "executions:write", "Retry started from the failed step.")
    return redirect(url_for("ui.execution", execution_id=execution_id))


def _flash_answer(status: int, body: dict[str, Any], scope: str, done: str) -> None:
    """One line on the next page: what happened, or why the API refused."""
    if status < 300:
        flash(done, "ok")
    elif status == 403:
        flash(f"This token cannot {CANNOT[scope]} (it lacks the scope {scope!r}).", "error")
    else:
        flash((body.get("error") or {}).get("message", "the request failed"), "error")


def workflows() -> Response | str:
    """Each workflow with its triggers and an SVG graph of its tasks."""
    status, body = api("GET", "/workflows")
    if status != 200:
        return _refused(status, body, "workflows:read")
    loaded = state().definitions.project.workflows
    shown = [
        {
            **w,
            "svg": graph.svg(_with_routes(w["tasks"], loaded.get(w["id"]))),
            "triggers": _filters(w, loaded.get(w["id"])),
        }
        for w in body["data"]["workflows"]
    ]
    return render_template("ui/workflows.html", workflows=shown)


def _with_routes(tasks: list[dict[str, Any]], loaded: Workflow | None) -> list[dict[str, Any]]:
    """The API's tasks, each with ``routes`` for the graph: where a router (its routes and
    default) or a wait (its timeout) may go, which the API's task list does not show."""
    if loaded is None:
        return tasks
    found = []
    for shown in tasks:
        task = loaded.find_task(shown["id"])
        routes: dict[str, str] = {}
        if task is not None and task.router is not None:
            for value, target in task.router.routes.items():
                routes[value] = target
            if task.router.default is not None:
                routes["default"] = task.router.default
        if task is not None and task.wait is not None and task.wait.on_timeout is not None:
            routes["timeout"] = task.wait.on_timeout
        found.append({**shown, "routes": routes})
    return found


def _filters(shown: dict[str, Any], loaded: Workflow | None) -> list[dict[str, Any]]:
    """The API's triggers, each with the source of its filter expression (if any)."""
    sources = [t.filter.source if t.filter else None for t in loaded.triggers] if loaded else []
    return [
        {**t, "filter": sources[i] if i < len(sources) else None}
        for i, t in enumerate(shown["triggers"])
    ]


def workers() -> Response | str:
    """The worker fleet: hostname, state, last heartbeat, running steps."""
    status, body = api("GET", "/workers", query_string={"limit": "200"})
    if status != 200:
        return _refused(status, body, "workers:read")
    return render_template("ui/workers.html", fleet=body["data"])


def register(bp: Blueprint) -> None:
    """Add the pages to the dashboard's blueprint."""
    bp.before_request(_login_required)
    bp.context_processor(_context)
    bp.add_url_rule("/", "index", index)
    bp.add_url_rule("/events", "events", events)
    bp.add_url_rule("/events/<event_id>", "event", event)
    bp.add_url_rule("/events/<event_id>/live", "event_live", event_live)
    bp.add_url_rule("/events/<event_id>/replay", "replay", replay, methods=["POST"])
    bp.add_url_rule("/executions/<execution_id>", "execution", execution)
    bp.add_url_rule("/executions/<execution_id>/timeline", "timeline", timeline)
    bp.add_url_rule("/executions/<execution_id>/cancel", "cancel", cancel, methods=["POST"])
    bp.add_url_rule("/executions/<execution_id>/retry", "retry", retry, methods=["POST"])
    bp.add_url_rule("/workflows", "workflows", workflows)
    bp.add_url_rule("/workers", "workers", workers)
