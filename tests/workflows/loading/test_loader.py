"""Loading projects: the seed loads as written; every broken definition is refused with
file, line, path and a message that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.conftest import MakeProject
from workflows.errors import DefinitionError, Problem
from workflows.loading.discovery import discover
from workflows.loading.loader import load_project

WORKFLOW = 'id: wf\ntasks:\n  - id: a\n    $use: tool(global::tools.#(id=="notify"))\n'


def errors_of(root: Path) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        load_project(root)
    return [p for p in caught.value.problems if not p.warning]


# -- the seed ------------------------------------------------------------------------------


def test_every_seed_block_loads_as_written(seed_dir: Path) -> None:
    project = load_project(seed_dir)

    assert set(project.workflows) == {
        "order-processor",
        "notification-sender",
        "inventory-updater",
        "product-updater",
        "user-welcome",
        "ecommerce-order-flow",
    }
    assert project.warnings == ()
    assert project.files[0] == "herald.yaml"
    assert project.models["gpt-4o"].provider == "mock"


def test_seed_first_block_uses_the_shared_agent_through_local(seed_dir: Path) -> None:
    workflow = load_project(seed_dir).workflows["order-processor"]

    task = workflow.first_task
    assert task.uses == "agent"
    assert task.agent is not None and task.agent.id == "order-processor"
    assert task.agent.location is not None and task.agent.location.file == "herald.yaml"
    assert task.action == "default" and task.final


def test_seed_ecommerce_flow_resolves_refs_tools_and_transitions(seed_dir: Path) -> None:
    project = load_project(seed_dir)
    flow = project.workflows["ecommerce-order-flow"]

    assert flow.input_schema == flow.triggers[0].schema  # config.input: $ref "#/triggers/0/schema"
    assert flow.input_schema is not None and "customerEmail" in flow.input_schema["required"]
    validate = flow.task("validate-order")
    assert validate.agent is not None
    assert validate.agent.config.id == "gpt-4o"  # $ref global::models.#(id=="gpt-4o")
    assert validate.agent.location is not None
    assert validate.agent.location.file == "ecommerce-order-flow.yaml"  # the local agent wins
    assert (validate.on_success, validate.on_error) == (
        "check-inventory",
        "send-error-notification",
    )
    check = flow.task("check-inventory")
    assert check.tool is not None
    assert check.tool.path == seed_dir.resolve() / "tools" / "check_inventory.ts"
    assert check.with_["items"] == "{{ .input.items }}"
    assert [t.id for t in flow.tasks if t.final] == [
        "send-confirmation",
        "send-error-notification",
        "send-inventory-error",
        "send-payment-error",
    ]
    # herald.yaml's defaults reach every task
    assert check.timeout == 30 and check.retry.attempts == 2 and flow.max_steps == 50


def test_seed_two_documents_in_one_file_are_two_workflows(seed_dir: Path) -> None:
    project = load_project(seed_dir)

    sender = project.workflows["notification-sender"]
    updater = project.workflows["inventory-updater"]
    assert sender.location is not None and updater.location is not None
    assert sender.location.file == updater.location.file == "fan-out.yaml"
    assert sender.location.line < updater.location.line


def test_seed_fan_out_block_as_written_has_nothing_to_run() -> None:
    root = Path(__file__).parents[2] / "fixtures" / "seed_as_written"

    problems = errors_of(root)

    assert [(p.file, p.line, p.path) for p in problems] == [
        ("fan-out.yaml", 7, "tasks[0]"),
        ("fan-out.yaml", 17, "tasks[0]"),
    ]
    assert all("has nothing to run" in p.message for p in problems)


def test_seed_tools_are_executable_node_scripts(seed_dir: Path) -> None:
    tools = sorted((seed_dir / "tools").glob("*.ts"))

    assert len(tools) == 6
    for tool in tools:
        assert tool.read_text().startswith("#!/usr/bin/env node\n")
        assert tool.stat().st_mode & 0o111


# -- broken definitions --------------------------------------------------------------------

# fmt: off
BROKEN: list[tuple[str, dict[str, str], str, int, str, str]] = [
    # (case, files, file, line, path, message fragment)
    (
        "unknown top-level key",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            trigers: []
            """},
        "wf.yaml", 5, "trigers",
        "unknown key 'trigers'; expected one of: agents, config, defaults, description, id",
    ),
    (
        "unknown task key",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                nxt: b
            """},
        "wf.yaml", 5, "tasks[0].nxt",
        "unknown key 'nxt'",
    ),
    (
        "missing workflow id",
        {"wf.yaml": """\
            version: "1"
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 1, "",
        "missing required key 'id'",
    ),
    (
        "empty task list",
        {"wf.yaml": "id: wf\ntasks: []\n"},
        "wf.yaml", 2, "tasks",
        "must list at least one task",
    ),
    (
        "ill-typed final",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                final: "yes"
            """},
        "wf.yaml", 5, "tasks[0].final",
        "must be true or false, not a string ('yes')",
    ),
    (
        "negative timeout",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                timeout: -1
            """},
        "wf.yaml", 5, "tasks[0].timeout",
        "-1 is less than or equal to the minimum of 0",
    ),
    (
        "retry attempts below one",
        {"wf.yaml": """\
            id: wf
            defaults:
              retry: {attempts: 0}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 3, "defaults.retry.attempts",
        "0 is less than the minimum of 1",
    ),
    (
        "trigger type other than signal",
        {"wf.yaml": """\
            id: wf
            triggers:
              - type: webhook
                name: order.created
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 3, "triggers[0].type",
        "unsupported trigger type 'webhook' (supported: signal)",
    ),
    (
        "trigger name not dotted",
        {"wf.yaml": """\
            id: wf
            triggers:
              - type: signal
                name: "order created!"
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "triggers[0].name",
        "must be a dotted name like order.created",
    ),
    (
        "trigger name too long",
        {"wf.yaml": f"""\
            id: wf
            triggers:
              - type: signal
                name: {"a" * 256}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "triggers[0].name",
        "at most 255 characters",
    ),
    (
        "trigger declared twice",
        {"wf.yaml": """\
            id: wf
            triggers:
              - {type: signal, name: order.created}
              - {type: signal, name: order.created}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "triggers[1].name",
        "trigger 'order.created' is declared twice",
    ),
    (
        "invalid trigger schema",
        {"wf.yaml": """\
            id: wf
            triggers:
              - type: signal
                name: order.created
                schema:
                  type: strin
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 6, "triggers[0].schema.type",
        "invalid JSON Schema: 'strin' is not one of ['array', 'boolean', 'integer', 'null'",
    ),
    (
        "trigger schema with a bad regex",
        {"wf.yaml": """\
            id: wf
            triggers:
              - type: signal
                name: order.created
                schema:
                  type: string
                  pattern: "[unclosed"
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 7, "triggers[0].schema.pattern",
        "invalid JSON Schema: '[unclosed' is not a 'regex'",
    ),
    (
        "trigger schema with a $ref to nothing",
        {"wf.yaml": """\
            id: wf
            triggers:
              - type: signal
                name: order.created
                schema:
                  type: object
                  properties:
                    item: {$ref: "#/$defs/item"}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 8, "triggers[0].schema.properties.item.$ref",
        "invalid JSON Schema: $ref '#/$defs/item' resolves to nothing",
    ),
    (
        "tool input schema with a remote $ref",
        {"wf.yaml": """\
            id: wf
            tools:
              - id: t
                execute: ./run.sh
                input: {$ref: "https://example.com/schema.json"}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="t"))
            """},
        "wf.yaml", 5, "tools[0].input.$ref",
        "$ref 'https://example.com/schema.json' resolves to nothing",
    ),
    (
        "duplicate task id",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 5, "tasks[1].id",
        "duplicate task id 'a' (first at line 3)",
    ),
    (
        "next naming no task",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                on_success:
                  next: nope
            """},
        "wf.yaml", 6, "tasks[0].on_success.next",
        "next names no task: 'nope' (tasks: a)",
    ),
    (
        "on_error naming no task",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                on_error: {next: missing}
            """},
        "wf.yaml", 5, "tasks[0].on_error.next",
        "next names no task: 'missing'",
    ),
    (
        "unsupported task type",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                type: loop
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "tasks[0].type",
        "unsupported task type 'loop' (supported: basic, router, sleep, signal, parallel, "
    ),
    (
        "task with nothing to run",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                type: basic
            """},
        "wf.yaml", 3, "tasks[0]",
        "task 'a' has nothing to run",
    ),
    (
        "$use selector matching nothing",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="nope"))
            """},
        "wf.yaml", 4, "tasks[0].$use",
        """reference 'local::tools.#(id=="nope")': #(id=="nope") matches nothing""",
    ),
    (
        "$use of neither agent nor tool",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: workflow(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "tasks[0].$use",
        "must be agent(<reference>) or tool(<reference>)",
    ),
    (
        "reference with a list index",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.0)
            """},
        "wf.yaml", 4, "tasks[0].$use",
        "unsupported path segment '0' (select list items with",
    ),
    (
        "reference with an unknown scope",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(remote::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "tasks[0].$use",
        "unknown scope 'remote'; use local:: or global::",
    ),
    (
        "agent $use pointing at a tool",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: agent(global::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "tasks[0].$use",
        "$use agent(...) must point at an entry of agents, not tools[0]",
    ),
    (
        "agent $use pointing at a model",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: agent(global::models.#(id=="gpt-4o"))
            """},
        "wf.yaml", 4, "tasks[0].$use",
        "$use agent(...) must point at an entry of agents, not models[0]",
    ),
    (
        "tool $use pointing at a whole list",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(global::tools)
            """},
        "wf.yaml", 4, "tasks[0].$use", "$use tool(...) must point at an entry of tools, not tools",
    ),
    (
        "action on a tool task",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                action: default
            """},
        "wf.yaml", 5, "tasks[0].action",
        "action is only for agent tasks",
    ),
    (
        "action the agent does not have",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: agent(local::agents.#(id=="helper"))
                action: translate
            """},
        "wf.yaml", 5, "tasks[0].action",
        "agent 'helper' has no action 'translate' (actions: summarize, default)",
    ),
    (
        "missing execute file",
        {"wf.yaml": """\
            id: wf
            tools:
              - id: t
                execute: ./tools/missing.sh
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="t"))
            """},
        "wf.yaml", 4, "tools[0].execute",
        "tool 't': execute file './tools/missing.sh' not found",
    ),
    (
        "duplicate local tool id",
        {"wf.yaml": """\
            id: wf
            tools:
              - {id: t, execute: ./run.sh}
              - {id: t, execute: ./run.sh}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="t"))
            """},
        "wf.yaml", 4, "tools[1].id",
        "duplicate tool id 't' (first at wf.yaml:3)",
    ),
    (
        "$ref pointer to nothing",
        {"wf.yaml": """\
            id: wf
            config:
              input:
                $ref: "#/triggers/3/schema"
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 4, "config.input.$ref",
        "$ref '#/triggers/3/schema': nothing at 'triggers'",
    ),
    (
        "$ref to a model herald.yaml lacks",
        {"wf.yaml": """\
            id: wf
            agents:
              - id: bot
                config:
                  $ref: global::models.#(id=="gpt-5")
            tasks:
              - id: a
                $use: agent(local::agents.#(id=="bot"))
            """},
        "wf.yaml", 5, "agents[0].config.$ref",
        "matches nothing in herald.yaml",
    ),
    (
        "$ref cycle",
        {"wf.yaml": """\
            id: wf
            config:
              input: {$ref: "#/config"}
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            """},
        "wf.yaml", 3, "config.input.$ref",
        "refers to itself (a cycle)",
    ),
    (
        "unsupported model provider",
        {"wf.yaml": """\
            id: wf
            agents:
              - id: bot
                config: {provider: anthropic, model: claude}
            tasks:
              - id: a
                $use: agent(local::agents.#(id=="bot"))
            """},
        "wf.yaml", 4, "agents[0].config.provider",
        "unsupported model provider 'anthropic' (supported: openai, mock)",
    ),
    (
        "inline model config without a model",
        {"wf.yaml": """\
            id: wf
            agents:
              - id: bot
                config: {provider: openai}
            tasks:
              - id: a
                $use: agent(local::agents.#(id=="bot"))
            """},
        "wf.yaml", 4, "agents[0].config",
        "missing required key 'model'",
    ),
    (
        "api key written instead of its variable name",
        {"wf.yaml": """\
            id: wf
            agents:
              - id: bot
                config: {provider: openai, model: gpt-4o, api_key_env: "sk-123 abc"}
            tasks:
              - id: a
                $use: agent(local::agents.#(id=="bot"))
            """},
        "wf.yaml", 4, "agents[0].config.api_key_env",
        "must be the NAME of an environment variable",
    ),
    (
        "template syntax error in with",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                with:
                  to: "{{ .input.email "
            """},
        "wf.yaml", 6, "tasks[0].with.to",
        "template error:",
    ),
    (
        "template reading a task that does not exist",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
                with:
                  previous: "{{ .tasks.nope.output }}"
            """},
        "wf.yaml", 6, "tasks[0].with.previous",
        "template reads .tasks.nope, and there is no task 'nope' (tasks: a)",
    ),
    (
        "template syntax error in outputs",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            outputs:
              result: "{{ .tasks.a.output | nosuchfilter }}"
            """},
        "wf.yaml", 6, "outputs.result",
        "template error:",
    ),
    (
        "a document that is not a workflow",
        {"docker-compose.yml": """\
            services:
              db:
                image: postgres
            """},
        "docker-compose.yml", 1, "",
        "not a workflow",
    ),
    (
        "YAML syntax error",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: [a
            """},
        "wf.yaml", 4, "",
        "invalid YAML:",
    ),
    (
        "duplicate YAML key",
        {"wf.yaml": """\
            id: wf
            tasks:
              - id: a
                $use: tool(local::tools.#(id=="notify"))
            id: again
            """},
        "wf.yaml", 5, "id",
        "duplicate key 'id' (first at line 1)",
    ),
    (
        "unknown key in herald.yaml",
        {"herald.yaml": "model: []\n"},
        "herald.yaml", 1, "model",
        "unknown key 'model'; expected one of: agents, defaults, models",
    ),
    (
        "herald.yaml model without an id",
        {"herald.yaml": """\
            models:
              - provider: mock
                model: m
            """},
        "herald.yaml", 2, "models[0]",
        "missing required key 'id'",
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("files", "file", "line", "path", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN],
)
def test_broken_definition_is_refused_with_file_line_and_message(
    make_project: MakeProject, files: dict[str, str], file: str, line: int, path: str, message: str
) -> None:
    problems = errors_of(make_project(files))

    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    problem = problems[0]
    assert (problem.file, problem.line, problem.path) == (file, line, path)
    assert message in problem.message


def test_duplicate_workflow_ids_name_both_places(make_project: MakeProject) -> None:
    workflow = 'id: wf\ntasks:\n  - id: a\n    $use: tool(local::tools.#(id=="notify"))\n'
    root = make_project({"a.yaml": workflow, "sub/b.yaml": "# second\n" + workflow})

    (problem,) = errors_of(root)

    assert (problem.file, problem.line, problem.path) == ("sub/b.yaml", 2, "id")
    assert problem.message == "duplicate workflow id 'wf' (also at a.yaml:1)"


def test_a_duplicate_workflow_id_is_reported_even_when_the_copy_is_broken(
    make_project: MakeProject,
) -> None:
    root = make_project({"a.yaml": WORKFLOW, "b.yaml": "id: wf\ntasks: []\n"})

    problems = errors_of(root)

    assert [(p.file, p.line, p.path, p.message) for p in problems] == [
        ("b.yaml", 1, "id", "duplicate workflow id 'wf' (also at a.yaml:1)"),
        ("b.yaml", 2, "tasks", "must list at least one task"),
    ]


def test_every_error_is_reported_not_only_the_first(make_project: MakeProject) -> None:
    root = make_project(
        {
            "a.yaml": """\
                id: a
                colour: blue
                tasks:
                  - id: one
                    type: loop
                    $use: tool(local::tools.#(id=="nope"))
                    on_success: {next: two}
                """,
            "b.yaml": "id: b\ntasks:\n  - id: x\n",
        }
    )

    problems = errors_of(root)

    assert [(p.file, p.line, p.path) for p in problems] == [
        ("a.yaml", 2, "colour"),
        ("a.yaml", 5, "tasks[0].type"),
        ("a.yaml", 6, "tasks[0].$use"),
        ("a.yaml", 7, "tasks[0].on_success.next"),
        ("b.yaml", 3, "tasks[0]"),
    ]
    assert "a.yaml:2: colour: unknown key 'colour'" in str(DefinitionError(problems))


def test_unreachable_task_is_a_warning_not_an_error(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                tasks:
                  - id: a
                    $use: tool(local::tools.#(id=="notify"))
                    final: true
                  - id: orphan
                    $use: tool(local::tools.#(id=="notify"))
                """
        }
    )

    project = load_project(root)

    (warning,) = project.warnings
    assert (warning.file, warning.line, warning.path, warning.warning) == (
        "wf.yaml",
        6,
        "tasks[1]",
        True,
    )
    assert warning.message == "task 'orphan' is never reached from the first task 'a'"
    assert "wf" in project.workflows


def test_a_final_task_does_not_lead_on_success(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                tasks:
                  - id: a
                    $use: tool(local::tools.#(id=="notify"))
                    final: true
                    on_success: {next: b}
                    on_error: {next: c}
                  - id: b
                    $use: tool(local::tools.#(id=="notify"))
                  - id: c
                    $use: tool(local::tools.#(id=="notify"))
                """
        }
    )

    warnings = load_project(root).warnings

    assert [(w.line, w.path, w.message) for w in warnings] == [
        (6, "tasks[0].on_success.next", "task 'a' is final: on_success.next 'b' is never followed"),
        (8, "tasks[1]", "task 'b' is never reached from the first task 'a'"),
    ]


# -- resolution and defaults ---------------------------------------------------------------


def test_ref_siblings_are_merged_over_the_target(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                agents:
                  - id: bot
                    config:
                      $ref: global::models.#(id=="gpt-4o")
                      params: {temperature: 0.9}
                tasks:
                  - id: a
                    $use: agent(local::agents.#(id=="bot"))
                """
        }
    )

    agent = load_project(root).workflows["wf"].first_task.agent

    assert agent is not None
    assert (agent.config.provider, agent.config.model) == ("mock", "gpt-4o")
    assert dict(agent.config.params) == {"temperature": 0.9}


def test_json_schema_refs_inside_a_schema_are_left_to_json_schema(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                triggers:
                  - type: signal
                    name: order.created
                    schema:
                      type: object
                      properties:
                        item: {$ref: "#/$defs/item"}
                      $defs:
                        item: {type: string}
                tasks:
                  - id: a
                    $use: tool(local::tools.#(id=="notify"))
                """
        }
    )

    trigger = load_project(root).workflows["wf"].triggers[0]

    assert trigger.schema is not None
    assert trigger.schema["properties"]["item"] == {"$ref": "#/$defs/item"}


def test_local_definitions_win_over_herald_yaml(make_project: MakeProject) -> None:
    root = make_project(
        {
            "wf.yaml": """\
                id: wf
                tools:
                  - {id: notify, execute: ./run.sh}
                tasks:
                  - id: a
                    $use: tool(local::tools.#(id=="notify"))
                  - id: b
                    $use: tool(global::tools.#(id=="notify"))
                """
        }
    )

    workflow = load_project(root).workflows["wf"]

    local, shared = workflow.task("a").tool, workflow.task("b").tool
    assert local is not None and local.execute == "./run.sh"
    assert shared is not None and shared.execute == "./tools/notify.sh"


def test_retry_and_timeout_merge_project_workflow_and_task(make_project: MakeProject) -> None:
    root = make_project(
        {
            "herald.yaml": """\
                defaults:
                  timeout: 300
                  retry: {attempts: 1, backoff: 1, backoff_max: 300, jitter: true}
                """,
            "wf.yaml": """\
                id: wf
                defaults:
                  timeout: 30
                  max_steps: 7
                  retry: {attempts: 3, backoff: 2}
                tools:
                  - {id: t, execute: ./run.sh}
                tasks:
                  - id: a
                    $use: tool(local::tools.#(id=="t"))
                    retry: {attempts: 5}
                  - id: b
                    $use: tool(local::tools.#(id=="t"))
                    timeout: 5
                """,
        }
    )

    workflow = load_project(root).workflows["wf"]

    a, b = workflow.tasks
    assert (a.retry.attempts, a.retry.backoff, a.retry.backoff_max, a.retry.jitter) == (
        5,
        2.0,
        300.0,
        True,
    )
    assert (a.timeout, b.timeout, b.retry.attempts) == (30.0, 5.0, 3)
    assert workflow.max_steps == 7


def test_a_project_without_herald_yaml_loads(make_project: MakeProject) -> None:
    root = make_project(
        {
            "herald.yaml": None,
            "wf.yaml": """\
                id: wf
                tools:
                  - {id: t, execute: ./run.sh}
                tasks:
                  - id: a
                    $use: tool(local::tools.#(id=="t"))
                """,
        }
    )

    project = load_project(root)

    assert list(project.workflows) == ["wf"]
    assert project.files == ("wf.yaml",)


def test_a_missing_project_directory_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="project directory not found"):
        load_project(tmp_path / "nope")


# -- discovery -----------------------------------------------------------------------------


def test_discovery_skips_hidden_and_tool_directories_and_nested_project_files(
    make_project: MakeProject,
) -> None:
    workflow = 'id: {id}\ntasks:\n  - id: a\n    $use: tool(global::tools.#(id=="notify"))\n'
    root = make_project(
        {
            "b.yml": workflow.format(id="b"),
            "a/z.yaml": workflow.format(id="az"),
            ".git/x.yaml": "not: a workflow",
            ".venv/x.yaml": "not: a workflow",
            "venv/x.yaml": "not: a workflow",
            "node_modules/pkg/x.yaml": "not: a workflow",
            "__pycache__/x.yaml": "not: a workflow",
            "nested/herald.yaml": "not: a project",
            "nested/herald.yml": "not: a project",
            "notes.txt": "not yaml",
        }
    )

    assert [p.relative_to(root).as_posix() for p in discover(root)] == ["a/z.yaml", "b.yml"]
    assert load_project(root).files == ("herald.yaml", "a/z.yaml", "b.yml")


def test_workflows_globs_narrow_discovery(make_project: MakeProject) -> None:
    from tests.workflows.conftest import HERALD_YAML

    root = make_project(
        {
            "herald.yaml": HERALD_YAML + 'workflows: ["flows/*.yaml"]\n',
            "flows/wf.yaml": WORKFLOW,
            "docker-compose.yml": "services: {}\n",
        }
    )

    assert list(load_project(root).workflows) == ["wf"]


def test_an_empty_trailing_document_is_ignored(make_project: MakeProject) -> None:
    root = make_project({"wf.yaml": WORKFLOW + "---\n"})

    assert list(load_project(root).workflows) == ["wf"]


def test_a_large_project_loads(make_project: MakeProject) -> None:
    files = {}
    for w in range(200):
        lines = [f"id: wf-{w}", "triggers:", f"  - {{type: signal, name: load.w{w}}}", "tasks:"]
        for t in range(20):
            lines += [f"  - id: t{t}", '    $use: tool(global::tools.#(id=="notify"))']
            lines += [f'    with: {{n: "{{{{ .input.n }}}}", i: {t}}}']
            lines += [f"    on_success: {{next: t{t + 1}}}" if t < 19 else "    final: true"]
        files[f"flows/wf{w:03}.yaml"] = "\n".join(lines) + "\n"

    project = load_project(make_project(files))

    assert len(project.workflows) == 200
    assert all(len(w.tasks) == 20 for w in project.workflows.values())
    assert project.warnings == ()
