"""docker-compose.yml, checked without Docker: its shape, then each service run natively.

Docker does not run here, so the live test reads every service's ``command``,
``environment`` and ``healthcheck`` from the file, interpolates them as compose
does, and runs them on this machine against the local PostgreSQL and Redis, with
the same environment variable names (only the values that name hosts and paths
are local): the migration runs to completion on an empty database, the API
answers /health, the worker answers its health check and runs an event, the sweep
stays up, Flower answers. Then everything is stopped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support import drop_role
from tests.test_examples import EXAMPLES, SEED_EVENT
from workflows.store import db

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "prometheus.yml"
BIN = Path(sys.executable).parent
HERALD_SERVICES = ("migrate", "api", "worker", "sweep", "flower")
SECRETS = {
    "POSTGRES_PASSWORD",
    "HERALD_DB_APP_PASSWORD",
    "REDIS_PASSWORD",
    "HERALD_API_TOKENS",
    "FLOWER_BASIC_AUTH",
}

_VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is not set: compose refuses to start."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Interpolate as compose does: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR:?err}``."""

    def one(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        present = env.get(name)
        empty = present is None or (op is not None and op.startswith(":") and present == "")
        if op is not None and op.endswith("?") and empty:
            raise MissingVariable(f"{name}: {arg}")
        if op is not None and op.endswith("-") and empty:
            return arg
        return present or ""

    return _VARIABLE.sub(one, value)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string of a parsed compose document."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def compose() -> dict[str, Any]:
    """docker-compose.yml as compose sees it before interpolation (anchors merged)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


HOST_ENV = {
    "POSTGRES_PASSWORD": "pw",
    "HERALD_DB_APP_PASSWORD": "app-pw",
    "REDIS_PASSWORD": "redis-pw",
    "HERALD_API_TOKENS": "ops:compose-secret",
    "FLOWER_BASIC_AUTH": "admin:flower-secret",
}


# --- the file's shape -------------------------------------------------------------------------


def test_every_service_is_there_and_herald_ones_build_from_the_dockerfile() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "prometheus", *HERALD_SERVICES}
    for name in HERALD_SERVICES:
        assert services[name]["build"] == ".", name
        assert services[name]["command"], name


def test_the_worker_scales() -> None:
    worker = compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


@pytest.mark.parametrize("name", ["postgres", "redis", "api", "worker", "flower"])
def test_long_running_services_have_a_health_check(name: str) -> None:
    assert compose()["services"][name]["healthcheck"]["test"]


def test_startup_order_waits_for_health_and_the_migration() -> None:
    services = compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "sweep"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_no_secret_is_baked_in_and_compose_refuses_to_start_without_it(secret: str) -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"\$\{" + secret + r":\?[^}]+\}", raw), f"{secret} must be ${{{secret}:?...}}"
    env = {k: v for k, v in HOST_ENV.items() if k != secret}
    with pytest.raises(MissingVariable, match=secret):
        resolve(compose(), env)


def test_prometheus_scrapes_the_api_with_a_token_file_and_every_worker() -> None:
    services = resolve(compose()["services"], HOST_ENV)
    prometheus = services["prometheus"]
    config_mount = f"./{CONFIG.relative_to(ROOT)}:/etc/prometheus/prometheus.yml:ro"
    assert config_mount in prometheus["volumes"]
    assert [p.split(":")[0] for p in prometheus["ports"]] == ["127.0.0.1"]
    jobs = {job["job_name"]: job for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}

    api = jobs["herald-api"]
    bind = services["api"]["command"][services["api"]["command"].index("--bind") + 1]
    assert api["static_configs"][0]["targets"] == [f"api:{bind.rsplit(':', 1)[1]}"]
    secret = prometheus["secrets"][0]
    assert api["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert secret in compose()["secrets"]

    workers = jobs["herald-workers"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"]
    worker_command = services["worker"]["command"][-1].split()
    assert worker_command[worker_command.index("--metrics-port") + 1] == str(workers["port"])


def test_least_privilege_flower_the_database_role_and_redis() -> None:
    services = resolve(compose()["services"], HOST_ENV)
    flower = services["flower"]["environment"]
    assert set(flower) == {"HERALD_BROKER_URL", "FLOWER_BASIC_AUTH", "FLOWER_PERSISTENT"}
    assert [p.split(":")[0] for p in services["flower"]["ports"]] == ["127.0.0.1"]
    assert "--app-role" in services["migrate"]["command"]
    owner = services["migrate"]["environment"]["HERALD_DATABASE_URL"]
    assert owner.startswith("postgresql://postgres:")
    for name in ("api", "worker", "sweep"):
        env = services[name]["environment"]
        assert env["HERALD_DATABASE_URL"].startswith("postgresql://herald:app-pw@"), name
        assert env["HERALD_BROKER_URL"] == "redis://:redis-pw@redis:6379/0", name
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert ("ports" not in services["postgres"]) and ("ports" not in services["redis"])


def test_the_dockerfile_copies_only_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile, re.M)
    sources = [s for line in copies for s in line.split()]
    # the migrations ship inside the workflows package, installed (not editable) with it
    assert {"pyproject.toml", "herald", "app", "workers", "workflows"} <= set(sources)
    assert re.search(r"^RUN pip install \.(?!\S)", dockerfile, re.M), "install the package as is"
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("$$HOME ${SET} $SET ${NOPE:-d} ${EMPTY:-d} ${EMPTY-d}", env) == (
        "$HOME x x d d "
    )
    with pytest.raises(MissingVariable, match="NOPE: say so"):
        interpolate("${NOPE:?say so}", env)


# --- each service, run natively -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def health_command(service: dict[str, Any]) -> list[str]:
    """A compose health check as an argv: CMD as is, CMD-SHELL through sh."""
    kind, *rest = service["healthcheck"]["test"]
    return ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest


class Services:
    """The long-running services started by the test, stopped (and their logs kept) at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def alive(self, name: str) -> bool:
        if self.running[name].poll() is not None:
            pytest.fail(f"{name} exited with {self.running[name].returncode}:\n{self.log(name)}")
        return True

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_each_service_runs_natively(empty_database: str, queue_prefix: str, tmp_path: Path) -> None:
    api_port, flower_port, redis_port = free_port(), free_port(), free_port()
    role = f"herald_compose_{uuid.uuid4().hex[:8]}"
    host_env = {
        **HOST_ENV,
        "HERALD_DB_USER": role,
        "HERALD_API_PORT": str(api_port),
        "FLOWER_PORT": str(flower_port),
        "HERALD_API_WORKERS": "1",
        "HERALD_WORKER_CONCURRENCY": "1",
    }
    services = resolve(compose()["services"], host_env)
    app_url = make_url(empty_database).set(
        username=role, password=HOST_ENV["HERALD_DB_APP_PASSWORD"]
    )
    # The same variable names; values that name hosts and paths become local ones.
    local = {
        "HERALD_DATABASE_URL": app_url.render_as_string(hide_password=False),
        "HERALD_BROKER_URL": f"redis://:{HOST_ENV['REDIS_PASSWORD']}@127.0.0.1:{redis_port}/0",
        "HERALD_QUEUE_PREFIX": queue_prefix,
        "HERALD_PROJECT_DIR": str(EXAMPLES),
        "EXAMPLES_OUTBOX": str(tmp_path / "outbox"),
    }
    base = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "HOSTNAME": socket.gethostname(),
        "PYTHONUNBUFFERED": "1",
    }

    def env_of(name: str, **overrides: str) -> dict[str, str]:
        declared = services[name]["environment"]
        ours = {k: v for k, v in {**local, **overrides}.items() if k in declared}
        if name not in ("flower", "migrate"):
            assert set(local) <= set(declared), f"{name} lacks {set(local) - set(declared)}"
        return {**base, **{k: str(v) for k, v in declared.items()}, **ours}

    def argv(command: list[str]) -> list[str]:
        return [sys.executable if command[0] == "python" else command[0], *command[1:]]

    running = Services(tmp_path)
    try:
        # redis: its own command, on a port of this test's, requiring the password
        redis_command = services["redis"]["command"]
        running.start(
            "redis",
            [*redis_command[:-1], f"{redis_command[-1]} --port {redis_port} --save ''"],
            {**base, **services["redis"]["environment"]},
        )
        client = redis.Redis(port=redis_port)
        wait_for("redis to refuse a client without the password", lambda: _refused(client))
        authed = redis.Redis(port=redis_port, password=HOST_ENV["REDIS_PASSWORD"])
        assert authed.ping()

        # migrate: a one-shot that runs to completion on an empty database, as the owner
        migrate = subprocess.run(
            argv(services["migrate"]["command"]),
            env=env_of("migrate", HERALD_DATABASE_URL=empty_database),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
        engine = db.make_engine(empty_database)
        db.check_schema(engine)
        with engine.connect() as conn:
            superuser = conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).scalar_one()
        engine.dispose()
        assert superuser is False  # the role every other service runs as

        for name in ("api", "worker", "sweep", "flower"):
            running.start(name, argv(services[name]["command"]), env_of(name))

        for name in ("api", "worker", "flower"):
            check = argv(health_command(services[name]))

            def healthy(name: str = name, check: list[str] = check) -> bool:
                running.alive(name)
                return (
                    subprocess.run(
                        check, env=env_of(name), capture_output=True, timeout=30
                    ).returncode
                    == 0
                )

            wait_for(f"{name}'s health check ({shlex.join(check)})", healthy, timeout=90)

        # the API and the worker together: the seed's event runs to the end
        url = f"http://127.0.0.1:{api_port}"
        request = urllib.request.Request(
            url + "/api/v1/events",
            data=json.dumps(SEED_EVENT).encode(),
            method="POST",
            headers={"Authorization": "Bearer compose-secret", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert response.status == 202
        executions = [w["execution_id"] for w in answer["data"]["workflows"]]

        def finished(execution_id: str) -> str | None:
            request = urllib.request.Request(
                f"{url}/api/v1/executions/{execution_id}",
                headers={"Authorization": "Bearer compose-secret"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
            status = body.get("data", body)["status"]
            return status if status in ("succeeded", "failed", "cancelled") else None

        for execution_id in executions:
            status = wait_for(f"execution {execution_id}", lambda e=execution_id: finished(e))
            assert status == "succeeded", running.log("worker")

        # every long-running service is still up
        for name in ("api", "worker", "sweep", "flower"):
            assert running.alive(name)
    finally:
        running.stop_all()
        drop_role(empty_database, role)


def _refused(client: redis.Redis) -> bool:
    try:
        client.ping()
    except redis.AuthenticationError:
        return True
    except redis.ResponseError as exc:
        return "NOAUTH" in str(exc)
    except redis.ConnectionError:
        return False
    return False
