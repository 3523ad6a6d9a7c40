"""The openai provider against a local Chat Completions server: what a step sees."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.agents.conftest import TEST_KEY, TEST_KEY_ENV, AgentFactory
from tests.agents.fake_openai import FakeOpenAI, Reply
from workers.agents import run_agent
from workers.agents.providers.openai import MissingApiKey, safe_url, scrub, strict_compatible
from workflows.errors import AgentError, InvalidStepIO

FAST_RETRY = {"retry-after-ms": "10"}
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "valid": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["valid", "reason"],
    "additionalProperties": False,
}


def test_success_returns_text_and_usage(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.script(Reply(content="Order o_1 looks fine."))
    agent = make_agent(params={"temperature": 0.2})

    result = run_agent(
        agent,
        "default",
        {"task": "Validate order o_1"},
        idempotency_key="k1",
        timeout=10,
        environ=key_env,
    )

    assert result.output == {"text": "Order o_1 looks fine."}
    assert result.usage["provider"] == "openai"
    assert result.usage["model"] == "gpt-4o"
    assert result.usage["prompt_tokens"] == 11
    assert result.usage["completion_tokens"] == 7
    assert result.usage["total_tokens"] == 18
    assert result.usage["attempts"] == 1
    assert isinstance(result.usage["latency_ms"], int)
    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert request.headers["idempotency-key"] == "k1"
    assert request.body["model"] == "gpt-4o"
    assert request.body["temperature"] == 0.2
    assert "response_format" not in request.body
    system, user = request.body["messages"]
    assert system == {"role": "system", "content": "You are an order processing assistant."}
    assert user["role"] == "user"
    assert user["content"].startswith("Validate order o_1")


def test_structured_output_sends_the_schema_strict_and_validates(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.script(Reply(content=json.dumps({"valid": True, "reason": "all good"})))
    agent = make_agent(action="validate", output_schema=ORDER_SCHEMA)

    result = run_agent(
        agent, "validate", {"orderId": "o_1"}, idempotency_key="k", timeout=10, environ=key_env
    )

    assert result.output == {"valid": True, "reason": "all good"}
    fmt = fake_openai.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == ORDER_SCHEMA
    assert fmt["json_schema"]["name"] == "order-processor-validate"


def test_structured_output_parsed_from_a_fenced_answer(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    answer = 'Here you go:\n```json\n{"valid": false, "reason": "no items"}\n```'
    fake_openai.script(Reply(content=answer))
    agent = make_agent(output_schema=ORDER_SCHEMA)

    result = run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    assert result.output == {"valid": False, "reason": "no items"}


def test_server_without_structured_outputs_gets_a_second_plain_request(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.script(
        Reply(status=400, error="Unrecognized request argument: response_format"),
        Reply(content='{"valid": true, "reason": "ok"}'),
    )
    agent = make_agent(output_schema=ORDER_SCHEMA)

    result = run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    assert result.output == {"valid": True, "reason": "ok"}
    assert result.usage["attempts"] == 2
    first, second = fake_openai.requests
    assert "response_format" in first.body
    assert "response_format" not in second.body
    assert "JSON Schema" in second.body["messages"][0]["content"]


def test_invalid_json_from_the_model_is_a_clear_step_error(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.script(Reply(content="I think the order is valid."))
    agent = make_agent(action="validate", output_schema=ORDER_SCHEMA)

    with pytest.raises(InvalidStepIO) as caught:
        run_agent(agent, "validate", {}, idempotency_key="k", timeout=10, environ=key_env)

    error = caught.value
    assert "agent 'order-processor' action 'validate'" in error.message
    assert "not JSON" in error.message
    record: Any = error.as_record()
    assert record["type"] == "invalid_io"
    assert record["where"] == "output"
    assert record["answer"] == "I think the order is valid."
    assert record["usage"]["prompt_tokens"] == 11  # tokens spent are still reported


def test_answer_that_does_not_fit_names_the_field(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.script(Reply(content='{"valid": "yes", "reason": "ok"}'))
    agent = make_agent(output_schema=ORDER_SCHEMA)

    with pytest.raises(InvalidStepIO) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    assert 'at /valid: "yes" is not of type "boolean"' in caught.value.message
    assert caught.value.details["errors"] == [
        {"path": "/valid", "message": '"yes" is not of type "boolean"'}
    ]
    assert caught.value.retryable is False


def test_rate_limited_then_success_counts_the_retry(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.script(
        Reply(status=429, error="Rate limit reached", headers=FAST_RETRY),
        Reply(content="done"),
    )
    agent = make_agent(max_retries=2)

    result = run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    assert result.output == {"text": "done"}
    assert result.usage["attempts"] == 2
    assert len(fake_openai.requests) == 2
    assert fake_openai.requests[1].headers["idempotency-key"] == "k"


def test_server_errors_fail_after_the_configured_retries(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.default = lambda body: Reply(
        status=500, error="upstream exploded", headers=FAST_RETRY
    )
    agent = make_agent(max_retries=2)

    with pytest.raises(AgentError) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    error = caught.value
    assert len(fake_openai.requests) == 3
    assert "HTTP 500" in error.message
    assert "(3 attempt(s))" in error.message
    assert "upstream exploded" in error.message
    assert error.retryable is True
    assert error.as_record()["type"] == "agent_error"
    assert error.details["attempts"] == 3
    assert error.details["provider"] == "openai"


def test_a_hanging_server_times_out_with_a_clear_error(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.default = lambda body: Reply(delay=10)
    agent = make_agent(timeout=0.3, max_retries=0)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    assert time.monotonic() - started < 3
    assert "timed out after 0.3s" in caught.value.message
    assert caught.value.details["attempts"] == 1


def test_the_step_timeout_bounds_every_attempt(
    fake_openai: FakeOpenAI, make_agent: AgentFactory, key_env: dict[str, str]
) -> None:
    fake_openai.default = lambda body: Reply(delay=10)
    agent = make_agent(timeout=60, max_retries=1)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=0.6, environ=key_env)

    assert time.monotonic() - started < 4  # two attempts of 0.3 s and one short backoff
    assert "timed out after 0.3s per attempt (2 attempt(s))" in caught.value.message


def test_missing_api_key_names_the_variable_and_calls_nothing(
    fake_openai: FakeOpenAI, make_agent: AgentFactory
) -> None:
    agent = make_agent()

    with pytest.raises(MissingApiKey) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ={})

    assert f"${TEST_KEY_ENV}" in caught.value.message
    assert caught.value.retryable is False
    assert caught.value.details["api_key_env"] == TEST_KEY_ENV
    assert fake_openai.requests == []


def test_api_key_never_leaks_into_errors_or_logs(
    fake_openai: FakeOpenAI,
    make_agent: AgentFactory,
    key_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leaky = (
        f"Incorrect API key provided: {TEST_KEY}. Request had 'Authorization: Bearer {TEST_KEY}'"
    )
    fake_openai.script(Reply(status=401, error=leaky))
    agent = make_agent()

    with caplog.at_level(logging.DEBUG), pytest.raises(AgentError) as caught:
        run_agent(agent, "default", {}, idempotency_key="k", timeout=10, environ=key_env)

    error = caught.value
    assert "HTTP 401" in error.message
    assert "Incorrect API key provided" in error.message
    for text in (
        error.message,
        str(error),
        repr(error),
        json.dumps(error.as_record()),
        caplog.text,
    ):
        assert TEST_KEY not in text
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize(
    ("schema", "strict"),
    [
        (ORDER_SCHEMA, True),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, False),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            True,
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
                "required": ["a"],
                "additionalProperties": False,
            },
            False,
        ),
    ],
)
def test_strict_mode_only_for_schemas_written_for_it(
    schema: dict[str, object], strict: bool
) -> None:
    assert strict_compatible(schema) is strict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-abcdef123456 bad", "key [redacted] bad"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        ("'authorization': 'xyz'", "'authorization': '[redacted]'"),
        ("the secret-value leaked", "the [redacted] leaked"),
    ],
)
def test_scrub_removes_keys_and_bearer_tokens(text: str, expected: str) -> None:
    assert scrub(text, "secret-value") == expected


def test_safe_url_drops_credentials_and_query() -> None:
    assert safe_url("http://user:pw@127.0.0.1:8080/v1?key=x#f") == "http://127.0.0.1:8080/v1"
