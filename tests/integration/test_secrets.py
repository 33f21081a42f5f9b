"""Secrets never shown (issue 13, item 5): after each store's connection error, no surface a user
or an operator sees holds a password.

Each case forces a real connection error while the password is configured, then collects the text
of every surface and greps it for the password:

* **Redis**: a Redis ACL user of its own on the shared test server, its password taken from the
  environment (``${...}`` in ``featurestore.yaml``). A first run succeeds (so the password really
  reached the client), then the user is disabled and its connections killed: the next run fails
  while writing online (recorded in the registry), and lookups fail. The user is deleted
  afterwards; the shared server's own password is never touched.
* **Cassandra**: ``username``/``password`` in the settings, a port nothing listens on (the test
  node at 19042 has no authentication, and a refused connection is what a stopped node gives).
* **PostgreSQL registry**: a URL with a password to a closed port: nothing of the project opens.

Surfaces: CLI stdout and stderr of ``run``, ``lookup``, ``check-consistency``, ``runs`` and
``describe``; ``serve``'s log; API bodies of a lookup, a training set, ``GET
/v1/feature-views/{name}`` and ``GET /v1/runs``; the UI's view page; the registry's recorded run
error; the exception's ``str``, ``repr`` and traceback; logs captured at DEBUG; the loaded
configuration's ``repr``. Each case also asserts that the error really happened, so that a
surface cannot pass by being empty.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import traceback
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from featurestore.config import CONFIG_FILE_NAME, ProjectConfig
from featurestore.errors import FeatureStoreError, StoreUnavailableError
from featurestore.store import FeatureStore

with warnings.catch_warnings():
    # As in tests/api/conftest.py: Starlette's TestClient warns that it prefers `httpx2`.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient

CLI = Path(sys.executable).with_name("featurestore")
VIEW = "customer_spend"
ENV_VAR = "FS_TEST_SECRET_PASSWORD"

DEFINITIONS = """
from datetime import timedelta

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64

customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
payments = FileSource(name="payments", path="data/payments.csv", timestamp_field="ts")
customer_spend = FeatureView(
    name="customer_spend",
    entities=(customer,),
    source=payments,
    timestamp_field="ts",
    ttl=timedelta(days=3650),
    features=(Feature("amount", Float64, description="last payment"),),
)
scoring = FeatureService(name="scoring", features=(customer_spend,))
"""

PAYMENTS = "customer_id,ts,amount\n1,2024-03-01T10:00:00Z,10.0\n2,2024-03-01T11:00:00Z,20.0\n"


def new_secret() -> str:
    return f"Pw-{uuid.uuid4().hex}"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def write_project(root: Path, *, online_store: str, registry: str = "sqlite:///data/registry.db") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "payments.csv").write_text(PAYMENTS)
    (root / "features.py").write_text(DEFINITIONS)
    config = f"""\
        project: secrets
        definitions: [features.py]
        registry: {registry}
        offline_store: {{type: parquet, path: data/offline}}
        online_store:
        {textwrap.indent(online_store.strip(), "  ")}
        engine: local
        """
    (root / CONFIG_FILE_NAME).write_text(textwrap.dedent(config))
    return root


class Surfaces:
    """The text of every surface, by name; :meth:`assert_clean` names those holding the secret."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.texts: dict[str, str] = {}

    def add(self, name: str, text: object) -> None:
        self.texts[name] = str(text)

    def cli(self, project: Path, env: dict[str, str], *args: str, fails: bool = True) -> str:
        """Run the CLI; record its stdout and stderr; check that it failed (or not)."""
        proc = subprocess.run(
            [str(CLI), "-C", str(project), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        name = f"cli {args[0]}"
        self.add(f"{name} stdout", proc.stdout)
        self.add(f"{name} stderr", proc.stderr)
        if fails:
            assert proc.returncode != 0, f"{name} should have failed:\n{proc.stdout}\n{proc.stderr}"
        else:
            assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stderr

    def exception(self, name: str, err: BaseException) -> None:
        self.add(f"{name} str", str(err))
        self.add(f"{name} repr", repr(err))
        self.add(f"{name} traceback", "".join(traceback.format_exception(err)))
        for attr in ("address", "store", "file", "key"):
            if hasattr(err, attr):
                self.add(f"{name} .{attr}", getattr(err, attr))

    def assert_clean(self) -> None:
        assert self.texts, "no surface collected"
        leaks = sorted(name for name, text in self.texts.items() if self.secret in text)
        assert not leaks, f"the password is shown in: {leaks}"


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", **extra}


def serve_log(project: Path, env: dict[str, str], surfaces: Surfaces, *, starts: bool) -> None:
    """``featurestore serve``'s log around a lookup and a view's page (or around its failed start)."""
    port = free_port()
    log_file = project / f"serve-{port}.log"
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [str(CLI), "-C", str(project), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            answered = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    httpx.get(f"{base}/v1/health", timeout=2)
                    answered = True
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert answered == starts, f"serve answered: {answered}; log:\n{log_file.read_text()}"
            if answered:
                lookup = httpx.post(
                    f"{base}/v1/online-features",
                    json={"features": [f"{VIEW}:amount"], "entities": {"customer_id": [1]}},
                    timeout=30,
                )
                assert lookup.status_code == 503, lookup.text
                surfaces.add("serve lookup body", lookup.text)
                surfaces.add("serve view page", httpx.get(f"{base}/ui/views/{VIEW}", timeout=30).text)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    surfaces.add("serve log", log_file.read_text())


def api_and_ui(project: Path, surfaces: Surfaces, *, lookups_fail: bool) -> None:
    """The datamart's answers (and the UI's view page) on a store whose online store fails."""
    with FeatureStore(project) as store:
        surfaces.add("ProjectConfig repr", repr(store.config))
        surfaces.add("online store config repr", repr(store.config.online_store))
        surfaces.add("online store config str", str(store.config.online_store))
        with pytest.raises(StoreUnavailableError) as raised:
            store.get_online_features([f"{VIEW}:amount"], [{"customer_id": 1}])
        surfaces.exception("lookup exception", raised.value)
        records = store.registry.list_runs(store.project, VIEW, limit=10)
        surfaces.add("registry run errors", [r.error for r in records])
        from datamart.app import create_app

        with TestClient(create_app(store), raise_server_exceptions=False) as api:
            lookup = api.post(
                "/v1/online-features", json={"features": [f"{VIEW}:amount"], "entities": {"customer_id": [1]}}
            )
            assert lookup.status_code == (503 if lookups_fail else 200), lookup.text
            surfaces.add("API lookup body", lookup.text)
            training = api.post(
                "/v1/training-set",
                json={
                    "features": [f"{VIEW}:amount"],
                    "spine": [{"customer_id": 1, "event_timestamp": "2024-03-02T00:00:00Z"}],
                },
            )
            surfaces.add("API training set body", training.text)
            view = api.get(f"/v1/feature-views/{VIEW}")
            assert view.status_code == 200, view.text
            surfaces.add("API feature view body", view.text)
            runs = api.get("/v1/runs")
            surfaces.add("API runs body", runs.text)
            page = api.get(f"/ui/views/{VIEW}")
            assert page.status_code == 200, page.text
            surfaces.add("UI view page", page.text)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


# ---------------------------------------------------------------------------- Redis


@pytest.fixture
def redis_user(redis_client: Any) -> Iterator[tuple[str, str]]:
    """A Redis ACL user of this test's own on the shared server (its password new), deleted after."""
    user, secret = f"fs_secret_{uuid.uuid4().hex[:12]}", new_secret()
    redis_client.acl_setuser(
        user, enabled=True, passwords=[f"+{secret}"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    yield user, secret
    redis_client.acl_deluser(user)


def test_redis_password_from_the_environment_is_never_shown(
    redis_server: Any,
    redis_client: Any,
    redis_user: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    user, secret = redis_user
    prefix = f"fs_secret_{uuid.uuid4().hex[:12]}"
    url = f"redis://{user}:${{{ENV_VAR}}}@{redis_server.host}:{redis_server.port}/0"
    project = write_project(
        tmp_path / "redis",
        online_store=f"{{type: redis, url: '{url}', key_prefix: {prefix}, socket_timeout: 5}}",
    )
    env = cli_env({ENV_VAR: secret})
    monkeypatch.setenv(ENV_VAR, secret)
    surfaces = Surfaces(secret)
    try:
        # The password comes from the environment and works: apply and a first run succeed.
        surfaces.cli(project, env, "apply", fails=False)
        surfaces.cli(project, env, "run", VIEW, "--no-progress", fails=False)
        assert redis_client.exists(f"{prefix}:{VIEW}:1"), "the first run wrote nothing online"

        # The store becomes unreachable for this user: its connections dropped, new ones refused.
        redis_client.acl_setuser(user, enabled=False)
        redis_client.client_kill_filter(user=user)

        stderr = surfaces.cli(project, env, "run", VIEW, "--no-progress")
        assert "Redis online store" in stderr and "unavailable" in stderr, stderr
        surfaces.cli(project, env, "lookup", f"{VIEW}:amount", "--key", "customer_id=1")
        surfaces.cli(project, env, "check-consistency", VIEW)
        surfaces.cli(project, env, "runs", fails=False)
        surfaces.cli(project, env, "describe", VIEW, fails=False)
        serve_log(project, env, surfaces, starts=True)
        api_and_ui(project, surfaces, lookups_fail=True)
        with FeatureStore(project) as store:
            failed = [r for r in store.registry.list_runs(store.project, VIEW) if r.status == "failed"]
            assert failed and failed[0].error and "Redis online store" in failed[0].error, failed
    finally:
        for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
            redis_client.delete(key)
    surfaces.add("caplog", debug_logs.text)
    surfaces.assert_clean()


# ---------------------------------------------------------------------------- Cassandra


def test_cassandra_password_is_never_shown(tmp_path: Path, debug_logs: pytest.LogCaptureFixture) -> None:
    secret = new_secret()
    project = write_project(
        tmp_path / "cassandra",
        online_store=f"""{{type: cassandra, hosts: [127.0.0.1], port: {free_port()}, username: fs,
          password: '{secret}', connect_timeout: 2, request_timeout: 2}}""",
    )
    env = cli_env({})
    surfaces = Surfaces(secret)
    # apply prepares the online store: it fails, as do the run, the lookup and the check.
    stderr = surfaces.cli(project, env, "apply")
    assert "Cassandra online store" in stderr and "unavailable" in stderr, stderr
    surfaces.cli(project, env, "run", VIEW, "--no-progress")
    surfaces.cli(project, env, "lookup", f"{VIEW}:amount", "--key", "customer_id=1")
    surfaces.cli(project, env, "check-consistency", VIEW)
    serve_log(project, env, surfaces, starts=True)
    with FeatureStore(project) as store:
        surfaces.add("ProjectConfig repr", repr(store.config))
        surfaces.add("online store config repr", repr(store.config.online_store))
        with pytest.raises(StoreUnavailableError) as raised:
            store.get_online_features([f"{VIEW}:amount"], [{"customer_id": 1}])
        surfaces.exception("lookup exception", raised.value)
    surfaces.add("caplog", debug_logs.text)
    surfaces.assert_clean()


def test_cassandra_run_error_is_recorded_without_the_password(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Applied with a reachable (in-memory) online store, then run against an unreachable
    Cassandra: the run fails while writing online and records its error."""
    secret = new_secret()
    project = write_project(tmp_path / "cassandra-run", online_store="{type: memory, name: fs_secret}")
    env = cli_env({})
    surfaces = Surfaces(secret)
    surfaces.cli(project, env, "apply", fails=False)
    config = (project / CONFIG_FILE_NAME).read_text()
    (project / CONFIG_FILE_NAME).write_text(
        config.replace(
            "{type: memory, name: fs_secret}",
            f"{{type: cassandra, port: {free_port()}, username: fs, password: '{secret}', connect_timeout: 2}}",
        )
    )
    stderr = surfaces.cli(project, env, "run", VIEW, "--no-progress")
    assert "Cassandra online store" in stderr, stderr
    api_and_ui(project, surfaces, lookups_fail=True)
    with FeatureStore(project) as store:
        failed = [r for r in store.registry.list_runs(store.project, VIEW) if r.status == "failed"]
        assert failed and failed[0].error and "Cassandra online store" in failed[0].error, failed
    surfaces.add("caplog", debug_logs.text)
    surfaces.assert_clean()


# ---------------------------------------------------------------------------- PostgreSQL registry


def test_registry_password_is_never_shown(tmp_path: Path, debug_logs: pytest.LogCaptureFixture) -> None:
    secret = new_secret()
    registry = f"postgresql+psycopg://fs:{secret}@127.0.0.1:{free_port()}/registry"
    project = write_project(tmp_path / "postgres", online_store="{type: sqlite}", registry=f"'{registry}'")
    env = cli_env({})
    surfaces = Surfaces(secret)
    stderr = surfaces.cli(project, env, "run", VIEW, "--no-progress")
    assert "Registry" in stderr and "unavailable" in stderr, stderr
    surfaces.cli(project, env, "lookup", f"{VIEW}:amount", "--key", "customer_id=1")
    surfaces.cli(project, env, "check-consistency", VIEW)
    surfaces.cli(project, env, "describe", VIEW)
    serve_log(project, env, surfaces, starts=False)  # the app cannot open its registry
    config = ProjectConfig.load(project)
    surfaces.add("ProjectConfig repr", repr(config))
    surfaces.add("ProjectConfig str", str(config))
    with pytest.raises(FeatureStoreError) as raised:
        FeatureStore(project)
    surfaces.exception("registry exception", raised.value)
    surfaces.add("caplog", debug_logs.text)
    surfaces.assert_clean()
