"""The ``openai`` provider: any OpenAI-compatible Chat Completions endpoint.

It goes through the official ``openai`` client, configured rather than wrapped:
the client already retries connection errors, timeouts, 408, 409, 429 and 5xx
answers with exponential backoff (0.5 s doubling up to 8 s, or the server's
``Retry-After``), so the model's ``max_retries`` is passed on as is and the
attempts it made are read back (``retries_taken`` on success, the
``x-stainless-retry-count`` header of the last request on failure).

The step's timeout bounds the call: each of the ``max_retries + 1`` attempts gets
the model's ``timeout`` or an equal share of the step's timeout, whichever is
shorter. The API key is read from the variable named by ``api_key_env``
(default ``OPENAI_API_KEY``) and never appears in an error: messages from the
client or the server are scrubbed of it and of any ``Authorization`` value.

The ``openai`` package is imported on the first call: a worker whose steps call
no model never loads it (and its ``httpx``/``pydantic``: ~20 MB of RSS).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from workers.agents.providers.base import Completion, CompletionRequest
from workflows.errors import AgentError
from workflows.model import JSON, ModelConfig

if TYPE_CHECKING:
    import openai

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_RETRY_HEADER = "x-stainless-retry-count"
_MAX_DETAIL = 500
_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s'\",}]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
    re.compile(r"()\bsk-[A-Za-z0-9_\-]{6,}"),
)


class MissingApiKey(AgentError):
    """An ``openai`` model's API key variable is not set; retrying cannot help."""

    retryable = False


class OpenAIProvider:
    """Calls ``/chat/completions`` with structured output when the action has a schema."""

    name = "openai"

    def problem(self, config: ModelConfig, environ: Mapping[str, str]) -> str | None:
        """Names the missing API key variable (never a value)."""
        env_name = key_env(config)
        if not environ.get(env_name):
            return f"provider openai needs an API key in ${env_name}, which is not set"
        return None

    def complete(self, request: CompletionRequest) -> Completion:
        """One chat completion, retried by the client; failures become ``AgentError``."""
        config = request.config
        env_name = key_env(config)
        api_key = request.environ.get(env_name, "")
        if not api_key:
            raise MissingApiKey(
                f"agent {request.agent_id!r}: model {config.id!r} (provider openai) needs an "
                f"API key in ${env_name}, which is not set in the worker's environment",
                details={"api_key_env": env_name, "model": config.id},
            )
        attempts_allowed = config.max_retries + 1
        attempt_timeout = request.timeout / attempts_allowed
        if config.timeout is not None:
            attempt_timeout = min(attempt_timeout, config.timeout)
        call = _Call(request, api_key, attempt_timeout)
        import openai  # lazily: see the module's docstring

        client = openai.OpenAI(
            api_key=api_key,
            base_url=config.base_url or openai.NOT_GIVEN,
            timeout=attempt_timeout,
            max_retries=config.max_retries,
        )
        with client:
            return call.run(client)


class _Call:
    """One ``complete`` call: the request body, the attempts so far, error translation."""

    def __init__(self, request: CompletionRequest, api_key: str, attempt_timeout: float) -> None:
        self.request = request
        self.api_key = api_key
        self.attempt_timeout = attempt_timeout
        self.attempts = 0

    def run(self, client: openai.OpenAI) -> Completion:
        """Ask with structured output; once more without it if the server refuses that.

        The client's exception is translated, then raised outside the ``except``
        block, so that the error carries neither a cause nor a context: nothing
        that walks the chain can reach the request and its Authorization header.
        """
        import openai

        try:
            return self._ask(client)
        except openai.APIStatusError as exc:
            self._count(exc.response.request.headers)
            error = self._error(f"HTTP {exc.status_code}", _detail(exc.body, exc.message))
        except openai.APITimeoutError as exc:
            self._count(exc.request.headers)
            error = self._error(f"timed out after {self.attempt_timeout:g}s per attempt")
        except openai.APIConnectionError as exc:
            self._count(exc.request.headers)
            error = self._error("could not connect", str(exc.message))
        except openai.OpenAIError as exc:
            error = self._error("client error", str(exc))
        raise error

    def _ask(self, client: openai.OpenAI) -> Completion:
        import openai

        schema = self.request.output_schema
        if schema is None:
            return self._create(client, None)
        try:
            return self._create(client, response_format(self.request, schema))
        except openai.BadRequestError as exc:
            if "response_format" not in str(exc.message):
                raise
            self._count(exc.response.request.headers)
        # An endpoint without structured outputs: the system message asks for JSON
        # and run_agent parses it from the content.
        return self._create(client, None)

    def _create(self, client: openai.OpenAI, fmt: dict[str, JSON] | None) -> Completion:
        config = self.request.config
        extra: dict[str, Any] = {}
        if fmt is not None:
            extra["response_format"] = fmt
        raw = client.chat.completions.with_raw_response.create(
            model=config.model,
            messages=cast(Any, [m.as_dict() for m in self.request.messages]),
            extra_headers={"Idempotency-Key": self.request.idempotency_key},
            extra_body=dict(config.params) or None,
            **extra,
        )
        self.attempts += raw.retries_taken + 1
        completion = raw.parse()
        if not completion.choices:
            raise self._error("the answer has no choices")
        message = completion.choices[0].message
        if message.refusal:
            raise self._error("the model refused", message.refusal)
        usage = completion.usage
        return Completion(
            model=completion.model or config.model,
            content=message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            attempts=self.attempts,
        )

    def _count(self, headers: Mapping[str, str]) -> None:
        try:
            self.attempts += int(headers.get(_RETRY_HEADER, "0")) + 1
        except ValueError:
            self.attempts += 1

    def _error(self, what: str, detail: str = "") -> AgentError:
        config = self.request.config
        where = safe_url(config.base_url) if config.base_url else "the default endpoint"
        text = f"agent {self.request.agent_id!r}: openai model {config.model!r} at {where}: {what}"
        text += f" ({self.attempts} attempt(s))" if self.attempts else ""
        if detail:
            text += f": {detail}"
        return AgentError(
            scrub(text, self.api_key),
            details={"provider": "openai", "model": config.model, "attempts": self.attempts},
        )


def key_env(config: ModelConfig) -> str:
    """The name of the variable that holds ``config``'s API key."""
    return config.api_key_env or DEFAULT_KEY_ENV


def response_format(request: CompletionRequest, schema: dict[str, JSON]) -> dict[str, JSON]:
    """The ``json_schema`` response format, strict when the schema allows it."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{request.agent_id}-{request.action_id}")[:64]
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": strict_compatible(schema)},
    }


def strict_compatible(schema: JSON) -> bool:
    """Whether OpenAI's strict mode accepts ``schema`` as written.

    Strict mode wants every object closed (``additionalProperties: false``) with
    every property required; a schema that is not written that way is sent
    non-strict and checked afterwards with jsonschema.
    """
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if not isinstance(properties, dict) or set(schema.get("required", [])) != set(properties):
            return False
    return all(strict_compatible(value) for value in schema.values())


def scrub(text: str, secret: str) -> str:
    """``text`` without ``secret`` and without anything that looks like a bearer token."""
    if secret:
        text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: scheme, host, port and path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _detail(body: object, fallback: str) -> str:
    """The server's own error message when it sent one, else the client's, shortened."""
    message: object = fallback
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message", inner) if isinstance(inner, dict) else inner
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    return text[:_MAX_DETAIL]
