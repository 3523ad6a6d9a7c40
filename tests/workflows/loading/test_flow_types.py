"""Flow-control task types at load time: each is built with its expressions compiled, and
every mistake in one is refused with file, line, path and a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.conftest import MakeProject
from workflows.errors import DefinitionError, Problem
from workflows.loading.loader import load_project

NOTIFY = 'tool(global::tools.#(id=="notify"))'


def errors_of(root: Path) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        load_project(root)
    return [p for p in caught.value.problems if not p.warning]


ROUTER = f"""\
id: wf
tasks:
  - id: pick
    type: router
    condition: input.country
    routes: {{US: us, CA: ca}}
    default: other
  - id: us
    $use: {NOTIFY}
  - id: ca
    $use: {NOTIFY}
  - id: other
    $use: {NOTIFY}
"""


def test_a_router_loads_with_its_condition_compiled(make_project: MakeProject) -> None:
    project = load_project(make_project({"wf.yaml": ROUTER}))

    pick = project.workflows["wf"].task("pick")
    assert (pick.type, pick.uses, pick.settles_alone) == ("router", "none", True)
    assert pick.router is not None
    assert dict(pick.router.routes) == {"US": "us", "CA": "ca"}
    assert pick.router.default == "other"
    assert pick.router.condition.evaluate({"input": {"country": "CA"}}) == "CA"
    assert project.warnings == ()  # routes and default count as paths: every task is reached


# fmt: off
BROKEN: list[tuple[str, str, int, str, str]] = [
    # (case, workflow file, line, path, message fragment)
    (
        "condition syntax error",
        ROUTER.replace("condition: input.country", "condition: input.country =="),
        5, "tasks[0].condition",
        "expression syntax error at column 17: mismatched input '<EOF>'",
    ),
    (
        "condition reads an unknown variable",
        ROUTER.replace("condition: input.country", "condition: payload.country"),
        5, "tasks[0].condition",
        "unknown variable 'payload' in expression 'payload.country' (variables here: input, "
        "tasks, event, error)",
    ),
    (
        "item is not offered outside a collection",
        ROUTER.replace("condition: input.country", "condition: item.country"),
        5, "tasks[0].condition",
        "unknown variable 'item'",
    ),
    (
        "condition reads a task that does not exist",
        ROUTER.replace("condition: input.country", 'condition: tasks["nope"].output.x'),
        5, "tasks[0].condition",
        "expression reads tasks.nope, and there is no task 'nope' (tasks: pick, us, ca, other)",
    ),
    (
        "a route to no task",
        ROUTER.replace("CA: ca}", "CA: canada}"),
        6, "tasks[0].routes.CA",
        "route 'CA' names no task: 'canada' (tasks: pick, us, ca, other)",
    ),
    (
        "a default to no task",
        ROUTER.replace("default: other", "default: elsewhere"),
        7, "tasks[0].default",
        "default names no task: 'elsewhere'",
    ),
    (
        "no routes",
        ROUTER.replace("routes: {US: us, CA: ca}", "routes: {}"),
        6, "tasks[0].routes",
        "a router needs at least one route",
    ),
    (
        "missing condition",
        ROUTER.replace("    condition: input.country\n", ""),
        3, "tasks[0]",
        "missing required key 'condition'",
    ),
    (
        "a router runs nothing",
        ROUTER.replace("default: other", f"default: other\n    $use: {NOTIFY}"),
        8, "tasks[0].$use",
        "unknown key '$use'; expected one of: condition, default, delay, id, on_error, routes, "
        "type",
    ),
    (
        "a router's next is its routes",
        ROUTER.replace("default: other", "default: other\n    on_success: {next: us}"),
        8, "tasks[0].on_success",
        "unknown key 'on_success'",
    ),
    (
        "a route to something that is not a task id",
        ROUTER.replace("CA: ca}", "CA: [ca]}"),
        6, "tasks[0].routes.CA",
        "must be a string, not a list",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"), [pytest.param(*c[1:], id=c[0]) for c in BROKEN]
)
def test_a_broken_flow_task_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert (problems[0].file, problems[0].line, problems[0].path) == ("wf.yaml", line, path)
    assert message in problems[0].message


SLEEP = f"""\
id: wf
tasks:
  - id: nap
    type: sleep
    duration: 15m
    on_success: {{next: after}}
  - id: after
    $use: {NOTIFY}
    delay: 2h
"""


def test_a_sleep_and_a_delay_load_in_seconds(make_project: MakeProject) -> None:
    workflow = load_project(make_project({"wf.yaml": SLEEP})).workflows["wf"]

    nap, after = workflow.tasks
    assert (nap.type, nap.uses, nap.delay, nap.on_success) == ("sleep", "none", 900.0, "after")
    assert (after.type, after.delay) == ("basic", 7200.0)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("1", 1.0),
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("30d", 2592000.0),
    ],
)
def test_durations_are_seconds_or_a_number_and_a_unit(
    make_project: MakeProject, written: str, seconds: float
) -> None:
    text = SLEEP.replace("duration: 15m", f"duration: {written}")
    assert load_project(make_project({"wf.yaml": text})).workflows["wf"].tasks[0].delay == seconds


# fmt: off
BROKEN_SLEEPS: list[tuple[str, str, int, str, str]] = [
    (
        "a duration in words",
        SLEEP.replace("duration: 15m", "duration: 10 minutes"),
        5, "tasks[0].duration",
        "'10 minutes' is not a duration: write seconds (90) or a number and a unit (90s, 15m, 2h, "
        "30d)",
    ),
    (
        "under a second",
        SLEEP.replace("duration: 15m", "duration: 0.5"),
        5, "tasks[0].duration",
        "0.5 is out of range: from 1 second to 30 days",
    ),
    (
        "over 30 days",
        SLEEP.replace("delay: 2h", "delay: 31d"),
        9, "tasks[1].delay",
        "'31d' is out of range: from 1 second to 30 days",
    ),
    (
        "a duration of another type",
        SLEEP.replace("duration: 15m", "duration: [1]"),
        5, "tasks[0].duration",
        "must be a number or a string, not a list",
    ),
    (
        "a sleep without a duration",
        SLEEP.replace("    duration: 15m\n", ""),
        3, "tasks[0]",
        "missing required key 'duration'",
    ),
    (
        "a sleep runs nothing",
        SLEEP.replace("duration: 15m", "duration: 15m\n    with: {a: 1}"),
        6, "tasks[0].with",
        "unknown key 'with'; expected one of: duration, final, id, on_success, type",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"), [pytest.param(*c[1:], id=c[0]) for c in BROKEN_SLEEPS]
)
def test_a_broken_sleep_or_delay_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert (problems[0].file, problems[0].line, problems[0].path) == ("wf.yaml", line, path)
    assert message in problems[0].message


SIGNAL = f"""\
id: wf
triggers:
  - {{type: signal, name: order.created}}
tasks:
  - id: tell
    type: signal
    signal:
      name: invoice.requested
      payload: {{orderId: "{{{{ .input.orderId }}}}"}}
    on_success: {{next: after}}
  - id: after
    $use: {NOTIFY}
"""


def test_a_signal_loads_with_its_event(make_project: MakeProject) -> None:
    project = load_project(make_project({"wf.yaml": SIGNAL}))

    tell = project.workflows["wf"].task("tell")
    assert (tell.type, tell.uses, tell.on_success) == ("signal", "none", "after")
    assert tell.signal is not None and tell.signal.name == "invoice.requested"
    assert dict(tell.signal.payload) == {"orderId": "{{ .input.orderId }}"}
    assert project.warnings == ()


def test_a_signal_that_starts_its_own_workflow_is_a_warning(make_project: MakeProject) -> None:
    text = SIGNAL.replace("name: invoice.requested", "name: order.created")
    (warning,) = load_project(make_project({"wf.yaml": text})).warnings

    assert (warning.line, warning.path) == (8, "tasks[0].signal.name")
    assert "signal 'order.created' starts this workflow again" in warning.message


# fmt: off
BROKEN_SIGNALS: list[tuple[str, str, int, str, str]] = [
    (
        "a name that is not an event name",
        SIGNAL.replace("name: invoice.requested", "name: invoice requested"),
        8, "tasks[0].signal.name",
        "'invoice requested' must be a dotted name like order.created",
    ),
    (
        "a payload template with bad syntax",
        SIGNAL.replace("{{ .input.orderId }}", "{{ .input.orderId "),
        9, "tasks[0].signal.payload.orderId",
        "template error",
    ),
    (
        "a payload template reading a task that does not exist",
        SIGNAL.replace(".input.orderId", ".tasks.nope.output"),
        9, "tasks[0].signal.payload.orderId",
        "template reads .tasks.nope, and there is no task 'nope'",
    ),
    (
        "a signal without a name",
        SIGNAL.replace("      name: invoice.requested\n", ""),
        7, "tasks[0].signal",
        "missing required key 'name'",
    ),
    (
        "a signal runs nothing",
        SIGNAL.replace("    on_success:", "    with: {a: 1}\n    on_success:"),
        10, "tasks[0].with",
        "unknown key 'with'; expected one of: delay, final, id, on_error, on_success, signal, type",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"), [pytest.param(*c[1:], id=c[0]) for c in BROKEN_SIGNALS]
)
def test_a_broken_signal_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert (problems[0].file, problems[0].line, problems[0].path) == ("wf.yaml", line, path)
    assert message in problems[0].message


PARALLEL = f"""\
id: wf
tasks:
  - id: fan
    type: parallel
    strategy: fail_fast
    max_workers: 2
    tasks:
      - id: email
        $use: {NOTIFY}
        with: {{to: "{{{{ .input.email }}}}"}}
      - id: sms
        $use: {NOTIFY}
        retry: {{attempts: 3}}
    on_success: {{next: after}}
  - id: after
    $use: {NOTIFY}
    with: {{sent: "{{{{ .tasks.fan.output.email }}}}"}}
"""


def test_a_parallel_task_loads_with_its_children(make_project: MakeProject) -> None:
    workflow = load_project(make_project({"wf.yaml": PARALLEL})).workflows["wf"]

    fan = workflow.task("fan")
    assert fan.parallel is not None
    assert (fan.type, fan.uses, fan.parallel.strategy, fan.parallel.max_workers) == (
        "parallel",
        "none",
        "fail_fast",
        2,
    )
    email, sms = fan.parallel.children
    assert (email.id, email.short_id, email.parent, email.uses) == (
        "fan.email",
        "email",
        "fan",
        "tool",
    )
    assert sms.retry.attempts == 3
    assert workflow.task("fan.sms") is sms  # a child is found by its id, as a step names it


# fmt: off
BROKEN_PARALLELS: list[tuple[str, str, int, str, str]] = [
    (
        "an unknown strategy",
        PARALLEL.replace("strategy: fail_fast", "strategy: first"),
        5, "tasks[0].strategy",
        "unsupported task strategy 'first' (supported: wait_all, fail_fast, best_effort, race)",
    ),
    (
        "no children",
        "id: wf\ntasks:\n  - id: fan\n    type: parallel\n    tasks: []\n",
        5, "tasks[0].tasks",
        "must list at least one task",
    ),
    (
        "a child with a next of its own",
        PARALLEL.replace("retry: {attempts: 3}", "on_success: {next: after}"),
        13, "tasks[0].tasks[1].on_success",
        "unknown key 'on_success'; expected one of: $use, action, id, retry, timeout, type, with",
    ),
    (
        "two children with one id",
        PARALLEL.replace("id: sms", "id: email"),
        11, "tasks[0].tasks[1].id",
        "duplicate task id 'email' in 'fan'",
    ),
    (
        "a child whose id is another task's",
        PARALLEL.replace("  - id: after", f"  - id: fan.sms\n    $use: {NOTIFY}\n  - id: after"),
        11, "tasks[0].tasks[1].id",
        "'fan''s task 'sms' is 'fan.sms', the id of another task",
    ),
    (
        "a child with nothing to run",
        PARALLEL.replace(f"        $use: {NOTIFY}\n        retry", "        retry"),
        11, "tasks[0].tasks[1]",
        "task 'sms' has nothing to run",
    ),
    (
        "max_workers of zero",
        PARALLEL.replace("max_workers: 2", "max_workers: 0"),
        6, "tasks[0].max_workers",
        "0 is less than the minimum of 1",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [pytest.param(*c[1:], id=c[0]) for c in BROKEN_PARALLELS],
)
def test_a_broken_parallel_task_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert (problems[0].file, problems[0].line, problems[0].path) == ("wf.yaml", line, path)
    assert message in problems[0].message


COLLECTION = f"""\
id: wf
tasks:
  - id: reserve
    type: collection
    items: "{{{{ .input.items }}}}"
    filter: item.qty > 0 && index < 100
    mode: parallel
    max_workers: 10
    task:
      $use: {NOTIFY}
      with: {{sku: "{{{{ .item.sku }}}}"}}
    on_success: {{next: after}}
  - id: after
    $use: {NOTIFY}
"""


def test_a_collection_loads_with_its_items_filter_and_task(make_project: MakeProject) -> None:
    reserve = load_project(make_project({"wf.yaml": COLLECTION})).workflows["wf"].task("reserve")

    found = reserve.collection
    assert found is not None and found.filter is not None
    assert (reserve.type, found.items, found.mode, found.max_workers) == (
        "collection",
        "{{ .input.items }}",
        "parallel",
        10,
    )
    assert (found.task.id, found.task.parent, found.task.uses) == ("reserve[]", "reserve", "tool")
    assert found.filter.evaluate({"item": {"qty": 1}, "index": 3}) is True


def test_a_collection_s_items_may_be_an_expression_and_its_names_its_own(
    make_project: MakeProject,
) -> None:
    text = COLLECTION.replace('items: "{{ .input.items }}"', "items: input.orders.map(o, o.lines)")
    text = text.replace(
        "filter: item.qty > 0 && index < 100",
        "filter: line.qty > n\n    item_var: line\n    index_var: n",
    )
    found = load_project(make_project({"wf.yaml": text})).workflows["wf"].task("reserve").collection
    assert found is not None and (found.item_var, found.index_var) == ("line", "n")
    assert not isinstance(found.items, str)
    assert found.items.evaluate({"input": {"orders": [{"lines": 1}]}}) == [1]


# fmt: off
BROKEN_COLLECTIONS: list[tuple[str, str, int, str, str]] = [
    (
        "an items expression with bad syntax",
        COLLECTION.replace('items: "{{ .input.items }}"', "items: input.items["),
        5, "tasks[0].items",
        "expression syntax error",
    ),
    (
        "a filter reading an unknown variable",
        COLLECTION.replace("item.qty > 0", "product.qty > 0"),
        6, "tasks[0].filter",
        "unknown variable 'product' in expression 'product.qty > 0 && index < 100' (variables "
        "here: input, tasks, event, error, item, index)",
    ),
    (
        "items reading item",
        COLLECTION.replace('items: "{{ .input.items }}"', "items: item.list"),
        5, "tasks[0].items",
        "unknown variable 'item'",
    ),
    (
        "an unknown mode",
        COLLECTION.replace("mode: parallel", "mode: batch"),
        7, "tasks[0].mode",
        "(supported: parallel, sequential)",
    ),
    (
        "a task with nothing to run",
        COLLECTION.replace(f"      $use: {NOTIFY}\n      with", "      with"),
        9, "tasks[0].task",
        "has nothing to run",
    ),
    (
        "a task with an id",
        COLLECTION.replace(f"      $use: {NOTIFY}\n", f"      id: x\n      $use: {NOTIFY}\n"),
        10, "tasks[0].task.id",
        "unknown key 'id'",
    ),
    (
        "no items",
        COLLECTION.replace('    items: "{{ .input.items }}"\n', ""),
        3, "tasks[0]",
        "missing required key 'items'",
    ),
    (
        "an item_var that is not a name",
        COLLECTION.replace("    filter: item.qty > 0 && index < 100\n", "    item_var: my-item\n"),
        6, "tasks[0].item_var",
        "'my-item' must be a name of letters, digits and '_'",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [pytest.param(*c[1:], id=c[0]) for c in BROKEN_COLLECTIONS],
)
def test_a_broken_collection_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert (problems[0].file, problems[0].line, problems[0].path) == ("wf.yaml", line, path)
    assert message in problems[0].message


WAIT = f"""\
id: wf
tasks:
  - id: await-payment
    type: wait
    wait_for:
      name: payment.confirmed
      condition: event.payload.orderId == input.orderId
    timeout: 2h
    on_timeout: expired
    on_success: {{next: paid}}
  - id: paid
    $use: {NOTIFY}
    with: {{amount: "{{{{ .tasks.await-payment.output.payload.amount }}}}"}}
  - id: expired
    $use: {NOTIFY}
"""


def test_a_wait_loads_with_its_event_condition_and_timeout(make_project: MakeProject) -> None:
    project = load_project(make_project({"wf.yaml": WAIT}))

    wait = project.workflows["wf"].task("await-payment")
    assert (wait.type, wait.uses, wait.on_success) == ("wait", "none", "paid")
    assert wait.wait is not None
    assert (wait.wait.event, wait.wait.timeout, wait.wait.on_timeout) == (
        "payment.confirmed",
        7200.0,
        "expired",
    )
    assert wait.wait.condition is not None
    context = {"input": {"orderId": "o1"}, "event": {"payload": {"orderId": "o1"}}}
    assert wait.wait.condition.evaluate(context) is True
    assert project.warnings == ()  # on_timeout makes `expired` reachable


# fmt: off
BROKEN_WAITS: list[tuple[str, str, int, str, str]] = [
    (
        "on_timeout naming no task",
        WAIT.replace("on_timeout: expired", "on_timeout: nope"),
        9, "tasks[0].on_timeout",
        "on_timeout names no task: 'nope' (tasks: await-payment, paid, expired)",
    ),
    (
        "on_timeout without a timeout",
        WAIT.replace("    timeout: 2h\n", ""),
        8, "tasks[0].on_timeout",
        "on_timeout needs a timeout",
    ),
    (
        "a condition reading a variable no wait offers",
        WAIT.replace("event.payload.orderId ==", "payload.orderId =="),
        7, "tasks[0].wait_for.condition",
        "unknown variable 'payload' in expression 'payload.orderId == input.orderId' "
        "(variables here: input, tasks, event, error)",
    ),
    (
        "a condition with bad syntax",
        WAIT.replace("== input.orderId", "== == input.orderId"),
        7, "tasks[0].wait_for.condition",
        "expression syntax error",
    ),
    (
        "a name that is not an event name",
        WAIT.replace("name: payment.confirmed", "name: payment confirmed"),
        6, "tasks[0].wait_for.name",
        "must be a dotted name like payment.confirmed",
    ),
    (
        "a timeout out of range",
        WAIT.replace("timeout: 2h", "timeout: 31d"),
        8, "tasks[0].timeout",
        "'31d' is out of range: from 1 second to 30 days",
    ),
    (
        "a wait without wait_for",
        WAIT.replace("    wait_for:\n      name: payment.confirmed\n", "    wait_on:\n").replace(
            "      condition: event.payload.orderId == input.orderId\n", ""
        ),
        3, "tasks[0]",
        "missing required key 'wait_for'",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "path", "message"), [pytest.param(*c[1:], id=c[0]) for c in BROKEN_WAITS]
)
def test_a_broken_wait_is_refused_with_file_line_and_message(
    make_project: MakeProject, text: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project({"wf.yaml": text}))

    assert problems, "the definition loaded"
    first = problems[0]
    assert (first.file, first.line, first.path) == ("wf.yaml", line, path), problems
    assert message in first.message
