"""The seed's ecommerce-order-flow end to end: API, broker, a real worker, an agent step.

Once on the mock provider (the seed's herald.yaml), once on the ``openai`` provider
pointed at the local Chat Completions server, and once on ``openai`` with no key in
the worker's environment (the worker says so at start, the step fails naming the
variable, the flow takes its ``on_error`` path). The API key never shows in what
the API answers nor in what the worker logs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Engine

from app import create_app
from tests.agents.conftest import TEST_KEY, TEST_KEY_ENV
from tests.agents.fake_openai import FakeOpenAI, Reply
from tests.workers.conftest import WorkerProcess, wait_for
from workflows.settings import ApiToken, Settings

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
ORDER: dict[str, Any] = {
    "orderId": "order_12345",
    "customerId": "customer_67890",
    "customerEmail": "customer@example.com",
    "items": [{"productId": "prod_001", "name": "Headphones", "quantity": 1, "price": 99.99}],
    "totalAmount": 99.99,
}
HAPPY_PATH = ["validate-order", "check-inventory", "process-payment-step", "send-confirmation"]
ENDED = ("succeeded", "failed", "cancelled")
TASK_TEXT = "Validate order order_12345 for customer customer_67890"

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def api(
    pg_url: str, redis_url: str, queue_prefix: str, test_token: ApiToken, clean_db: Engine
) -> Iterator[Callable[[Path], FlaskClient]]:
    """``api(project_dir)``: a test client of the API on that project; queues removed after."""
    apps = []

    def make(project_dir: Path) -> FlaskClient:
        settings = Settings(
            project_dir=project_dir,
            database_url=pg_url,
            broker_url=redis_url,
            queue_prefix=queue_prefix,
            api_tokens=(test_token,),
        )
        app = create_app(settings)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["herald"].engine.dispose()
    conn = redis.Redis.from_url(redis_url)
    keys = conn.keys(f"*{queue_prefix}*")
    if keys:
        conn.delete(*keys)
    conn.close()


@pytest.fixture
def openai_project(seed_dir: Path, tmp_path: Path, fake_openai: FakeOpenAI) -> Path:
    """A copy of the seed project whose gpt-4o model is ``openai`` on the local server."""
    project = tmp_path / "project"
    shutil.copytree(seed_dir, project)
    herald_yaml = project / "herald.yaml"
    text = herald_yaml.read_text()
    mock_model = "      provider: mock\n"
    assert text.count(mock_model) == 1, "the seed's herald.yaml changed shape"
    herald_yaml.write_text(
        text.replace(
            mock_model,
            "      provider: openai\n"
            f"      base_url: {fake_openai.base_url}\n"
            f"      api_key_env: {TEST_KEY_ENV}\n"
            "      timeout: 10\n"
            "      max_retries: 1\n",
        )
    )
    return project


def run_order(client: FlaskClient) -> dict[str, Any]:
    """Send the seed's order.created; the ecommerce-order-flow execution once it finished."""
    response = client.post(
        "/api/v1/events", json={"name": "order.created", "payload": ORDER}, headers=AUTH
    )
    assert response.status_code == 202, response.get_json()
    routes = response.get_json()["data"]["workflows"]
    (execution_id,) = [
        r["execution_id"] for r in routes if r["workflow_id"] == "ecommerce-order-flow"
    ]

    def finished() -> dict[str, Any] | None:
        answer = client.get(f"/api/v1/executions/{execution_id}", headers=AUTH)
        if answer.status_code == 404:
            return None  # not dispatched yet
        execution: dict[str, Any] = answer.get_json()["data"]
        done = execution["status"] in ENDED
        return execution if done else None

    result: dict[str, Any] = wait_for(finished, timeout=60, what="ecommerce-order-flow to end")
    return result


def every_execution_answer(client: FlaskClient) -> str:
    """What the API shows of every execution, steps included, once all have ended."""

    def all_ended() -> list[dict[str, Any]] | None:
        data = client.get("/api/v1/executions", headers=AUTH).get_json()["data"]
        listed: list[dict[str, Any]] = data["executions"]
        ended = listed and all(e["status"] in ENDED for e in listed)
        return listed if ended else None

    listed = wait_for(all_ended, timeout=60, what="every execution to end")
    shown = [client.get(f"/api/v1/executions/{e['id']}", headers=AUTH).get_json() for e in listed]
    return json.dumps([listed, shown])


def test_seed_flow_runs_on_the_mock_provider(
    api: Callable[[Path], FlaskClient], start_worker: StartWorker, seed_dir: Path
) -> None:
    start_worker(env={"HERALD_PROJECT_DIR": str(seed_dir)})

    execution = run_order(api(seed_dir))

    assert execution["status"] == "succeeded", execution
    steps = execution["steps"]
    assert [s["task_id"] for s in steps] == HAPPY_PATH
    assert all(s["status"] == "succeeded" for s in steps)
    validate = steps[0]
    assert validate["output"]["agent"] == "order-processor"
    assert TASK_TEXT in validate["output"]["text"]
    usage = validate["usage"]
    assert usage["provider"] == "mock"
    assert usage["model"] == "gpt-4o"
    assert usage["attempts"] == 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_seed_flow_runs_on_the_openai_provider(
    api: Callable[[Path], FlaskClient],
    start_worker: StartWorker,
    openai_project: Path,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.default = lambda body: Reply(content="The order is valid.")
    worker = start_worker(env={"HERALD_PROJECT_DIR": str(openai_project), TEST_KEY_ENV: TEST_KEY})
    client = api(openai_project)

    execution = run_order(client)

    assert execution["status"] == "succeeded", execution
    steps = execution["steps"]
    assert [s["task_id"] for s in steps] == HAPPY_PATH
    validate = steps[0]
    assert validate["output"] == {"text": "The order is valid."}
    usage = validate["usage"]
    assert usage["provider"] == "openai"
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        11,
        7,
        18,
    )
    assert usage["attempts"] == 1
    asked = [r for r in fake_openai.requests if TASK_TEXT in r.body["messages"][1]["content"]]
    assert len(asked) == 1
    assert asked[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert '"orderId": "order_12345"' in asked[0].body["messages"][1]["content"]
    assert asked[0].body["temperature"] == 0.2
    assert "agent_unavailable" not in worker.output()
    assert TEST_KEY not in every_execution_answer(client)
    assert TEST_KEY not in worker.output()


def test_openai_without_a_key_is_loud_at_start_and_fails_the_step_clearly(
    api: Callable[[Path], FlaskClient],
    start_worker: StartWorker,
    openai_project: Path,
    fake_openai: FakeOpenAI,
) -> None:
    worker = start_worker(env={"HERALD_PROJECT_DIR": str(openai_project)})
    client = api(openai_project)

    execution = run_order(client)

    assert "worker.agent_unavailable" in worker.output()
    assert f"${TEST_KEY_ENV}" in worker.output()
    steps = execution["steps"]
    assert [s["task_id"] for s in steps] == ["validate-order", "send-error-notification"]
    validate = steps[0]
    assert validate["status"] == "failed"
    assert validate["attempts"] == 1  # a missing key is not retried
    assert validate["error"]["type"] == "agent_error"
    assert f"${TEST_KEY_ENV}" in validate["error"]["message"]
    assert execution["status"] == "succeeded"  # the on_error path ends the flow
    assert fake_openai.requests == []
