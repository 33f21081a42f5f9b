"""Freshness and run failure alerts, delivered by the scheduler (driven by a fake clock) to a real
webhook receiver (``http.server`` in a thread) and a real SMTP server (aiosmtpd, with login),
both on 127.0.0.1 and started here. The webhook's token and the SMTP password come from
``${VAR}`` references and must appear nowhere: registry rows, logs, the CLI, the API, the UI."""

from __future__ import annotations

import json
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from datamart.app import create_app
from etl.local import LocalEngine
from etl.scheduler import Scheduler, SchedulerSettings
from featurestore.registry import alert_deliveries_t, alert_incidents_t
from featurestore.store import FeatureStore
from tests.integration.test_scheduler import Clock, Engine, make_project
from tests.unit.test_cli import featurestore
from tests.unit.tiny_projects import utc

with warnings.catch_warnings():
    # Starlette warns on importing its TestClient that it wants httpx2 (see tests/api/conftest.py).
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
    from fastapi.testclient import TestClient

HOOK_TOKEN = "hk-7f3a91c2e5b84d06"
SMTP_PASSWORD = "pw-c41e9a7d2b"
SMTP_USER = "alerts"


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording every POST (path, headers, JSON); answers 500 to the
    next ``fail`` requests, 204 otherwise."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.fail:
                    receiver.fail -= 1
                    self.send_response(500)
                else:
                    receiver.posts.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Mailbox:
    """aiosmtpd's handler: keeps every message accepted."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def subjects(self) -> list[str]:
        out = []
        for m in self.messages:
            content = m.content.decode() if isinstance(m.content, bytes) else str(m.content)
            out.append(next(line[9:] for line in content.splitlines() if line.startswith("Subject: ")))
        return out


LOGINS: list[str] = []


def _login(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
    if ok:
        LOGINS.append(SMTP_USER)
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    # AUTH offered without TLS (a test on 127.0.0.1); not required, since aiosmtpd warns about
    # requiring it without TLS: the test checks that the channel logged in instead.
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=_login, auth_require_tls=False)
    controller.start()
    yield box, port
    controller.stop()


def alerts_yaml(webhook_port: int, smtp_port: int, max_attempts: int = 3) -> str:
    return f"""
alerts:
  max_attempts: {max_attempts}
  channels:
    - name: ops-hook
      type: webhook
      url: http://127.0.0.1:{webhook_port}/hooks/${{HOOK_TOKEN}}
      headers: {{X-Hook-Signature: "sig-${{HOOK_TOKEN}}"}}
    - name: oncall
      type: email
      host: 127.0.0.1
      port: {smtp_port}
      from: featurestore@example.com
      to: [oncall@example.com]
      username: {SMTP_USER}
      password: ${{SMTP_PASSWORD}}
"""


@pytest.fixture(autouse=True)
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", HOOK_TOKEN)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)


def project(root: Path, webhook_port: int, smtp_port: int, *, schedule: str, max_attempts: int = 3) -> FeatureStore:
    """The scheduler suite's rides project (freshness 2 h, trips every hour of 2024-03-01) with
    the two channels."""
    make_project(root, schedule=schedule)
    with (root / "featurestore.yaml").open("a") as f:
        f.write(alerts_yaml(webhook_port, smtp_port, max_attempts))
    return FeatureStore(root)


def registry_rows(store: FeatureStore) -> str:
    with store.registry._engine.connect() as conn:
        rows = [tuple(r) for t in (alert_incidents_t, alert_deliveries_t) for r in conn.execute(sa.select(t))]
    return repr(rows)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert HOOK_TOKEN not in text and SMTP_PASSWORD not in text


def test_a_stale_view_alerts_each_channel_once_and_once_more_when_fresh_again(
    tmp_path: Path, webhook: WebhookReceiver, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    box, smtp_port = mailbox
    store = project(tmp_path / "rides", webhook.port, smtp_port, schedule="None")  # runs by hand below
    engine = LocalEngine(store)
    engine.run("rider_trips", end=utc(2024, 3, 1, 5), progress=False)  # watermark 04:00
    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched = Scheduler(store, Engine(store), settings=SchedulerSettings(poll=timedelta(days=1)), clock=clock)
    sched.tick()
    assert (webhook.posts, box.messages) == ([], [])  # 1.5 h old: fresh
    assert sched.next_wake() == utc(2024, 3, 1, 6, 0, 0, 1)  # the scheduler wakes when it turns stale

    clock.now = utc(2024, 3, 1, 6, 30)
    sched.tick()
    assert len(webhook.posts) == 1 and len(box.messages) == 1
    post = webhook.posts[0]
    assert post["path"] == f"/hooks/{HOOK_TOKEN}"
    assert post["headers"]["X-Hook-Signature"] == f"sig-{HOOK_TOKEN}"
    body = post["json"]
    assert (body["event"], body["project"], body["view"], body["kind"]) == (
        "alert.opened",
        "rides",
        "rider_trips",
        "stale",
    )
    assert body["detail"]["lag_seconds"] == 2.5 * 3600 and body["detail"]["freshness_seconds"] == 7200
    assert "is stale" in body["summary"] and "2:30:00 old" in body["summary"]
    assert box.messages[0].rcpt_tos == ["oncall@example.com"]
    assert LOGINS and LOGINS[-1] == SMTP_USER  # logged in with the password from ${SMTP_PASSWORD}
    assert box.subjects() == ["[featurestore rides] STALE: rider_trips"]

    for minutes in (40, 50):  # still stale: alerted once per incident
        clock.now = utc(2024, 3, 1, 6, minutes)
        sched.tick()
    sched.close()
    clock.now = utc(2024, 3, 1, 7)
    restarted = Scheduler(store, Engine(store), clock=clock)  # the state is in the registry
    restarted.tick()
    assert len(webhook.posts) == 1 and len(box.messages) == 1
    [incident] = store.registry.list_incidents(store.project)
    assert incident.is_open and incident.opened_at == utc(2024, 3, 1, 6, 30)
    assert {(d.channel, d.message, d.status, d.attempts) for d in incident.deliveries} == {
        ("ops-hook", "opened", "sent", 1),
        ("oncall", "opened", "sent", 1),
    }

    engine.run("rider_trips", start=utc(2024, 3, 1, 4), end=utc(2024, 3, 1, 8), progress=False)  # watermark 07:00
    clock.now = utc(2024, 3, 1, 7, 10)
    restarted.tick()
    assert len(webhook.posts) == 2 and len(box.messages) == 2
    assert webhook.posts[1]["json"]["event"] == "alert.cleared"
    assert "fresh again" in webhook.posts[1]["json"]["summary"]
    assert box.subjects()[1] == "[featurestore rides] RESOLVED: rider_trips"
    for minutes in (20, 30):
        clock.now = utc(2024, 3, 1, 7, minutes)
        restarted.tick()
    assert len(webhook.posts) == 2 and len(box.messages) == 2
    [incident] = store.registry.list_incidents(store.project)
    assert incident.cleared_at == utc(2024, 3, 1, 7, 10)
    assert all(d.status == "sent" for d in incident.deliveries) and len(incident.deliveries) == 4
    restarted.close()

    # Listed by the CLI, the API and the UI, none of which shows a secret.
    listed = featurestore("-C", store.config.root, "alerts", "--json")
    assert listed.code == 0, listed.err
    assert [(i["kind"], i["open"]) for i in json.loads(listed.out)] == [("stale", False)]
    table = featurestore("-C", store.config.root, "alerts")
    assert "cleared" in table.out and "rider_trips" in table.out
    assert featurestore("-C", store.config.root, "alerts", "--open").out.strip() == "no open alert incidents"
    with TestClient(create_app(store)) as client:
        api = client.get("/v1/alerts")
        page = client.get("/ui/alerts")
    assert api.status_code == 200 and api.json()[0]["view"] == "rider_trips"
    assert page.status_code == 200 and "fresh again" in page.text
    assert_no_secret(registry_rows(store), caplog.text, listed.out, table.out, api.text, page.text)
    store.close()


def test_a_scheduled_run_given_up_alerts_run_failed_and_clears_on_the_next_success(
    tmp_path: Path, webhook: WebhookReceiver, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, smtp_port = mailbox
    store = project(tmp_path / "rides", webhook.port, smtp_port, schedule="timedelta(hours=1)")
    source = store.config.root / "data" / "trips.parquet"
    hidden = source.with_suffix(".away")
    source.rename(hidden)
    clock = Clock(utc(2024, 3, 1, 5, 30))
    sched = Scheduler(
        store, Engine(store), settings=SchedulerSettings(attempts=2, backoff=timedelta(seconds=1)), clock=clock
    )
    assert len(sched.tick()) == 1
    sched.join()
    assert store.registry.list_incidents(store.project) == []  # a retried attempt does not alert
    clock.now += timedelta(seconds=1)
    assert [a.attempt for a in sched.tick()] == [2]
    sched.join()  # given up: the incident is opened, delivered at the next tick
    sched.tick()
    assert len(webhook.posts) == 1 and len(box.messages) == 1
    body = webhook.posts[0]["json"]
    assert (body["event"], body["kind"], body["view"]) == ("alert.opened", "run_failed", "rider_trips")
    assert "failed 2 time(s) and was given up" in body["summary"] and "no file matches" in body["detail"]["error"]
    assert box.subjects() == ["[featurestore rides] RUN FAILED: rider_trips"]

    clock.now = utc(2024, 3, 1, 6, 0, 1)  # the next due time fails too: the incident is still open
    for _ in range(2):
        sched.tick()
        sched.join()
        clock.now += timedelta(seconds=1)
    sched.tick()
    assert len(webhook.posts) == 1 and len(store.registry.list_incidents(store.project)) == 1
    # A push succeeds while the batch runs keep failing: the incident stays open.
    from etl.push import push

    push(store, "rider_trips", [{"rider_id": 1, "ts": utc(2024, 3, 1, 6, 30), "fare": 1.0}])
    sched.tick()
    assert len(webhook.posts) == 1 and store.registry.list_incidents(store.project)[0].is_open

    hidden.rename(source)
    clock.now = utc(2024, 3, 1, 7, 0, 1)
    assert len(sched.tick()) == 1
    sched.join()
    sched.tick()
    assert [p["json"]["event"] for p in webhook.posts] == ["alert.opened", "alert.cleared"]
    assert "ran successfully again" in webhook.posts[1]["json"]["summary"]
    assert box.subjects()[1] == "[featurestore rides] RESOLVED: rider_trips"
    [incident] = store.registry.list_incidents(store.project)
    assert incident.kind == "run_failed" and not incident.is_open
    sched.close()
    assert_no_secret(registry_rows(store), caplog.text)
    store.close()


def test_a_failed_delivery_is_recorded_retried_at_the_next_ticks_and_given_up_after_max_attempts(
    tmp_path: Path, webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dead_smtp = free_port()  # nothing listens there
    store = project(tmp_path / "rides", webhook.port, dead_smtp, schedule="None", max_attempts=2)
    LocalEngine(store).run("rider_trips", end=utc(2024, 3, 1, 5), progress=False)
    webhook.fail = 1
    clock = Clock(utc(2024, 3, 1, 9))  # 5 h old: stale
    sched = Scheduler(store, Engine(store), clock=clock)
    sched.tick()  # neither channel delivers; the scheduler carries on
    [incident] = store.registry.list_incidents(store.project)
    deliveries = {d.channel: d for d in incident.deliveries}
    assert (deliveries["ops-hook"].status, deliveries["ops-hook"].attempts) == ("retrying", 1)
    assert "answered HTTP 500" in (deliveries["ops-hook"].error or "")
    assert (deliveries["oncall"].status, deliveries["oncall"].attempts) == ("retrying", 1)
    assert "ConnectionRefusedError" in (deliveries["oncall"].error or "")
    assert "sending to channel 'ops-hook' failed (attempt 1 of 2" in caplog.text

    clock.now += timedelta(minutes=1)
    sched.tick()
    deliveries = {d.channel: d for d in store.registry.list_incidents(store.project)[0].deliveries}
    assert (deliveries["ops-hook"].status, deliveries["ops-hook"].attempts) == ("sent", 2)
    assert (deliveries["oncall"].status, deliveries["oncall"].attempts) == ("failed", 2)  # given up
    assert len(webhook.posts) == 1
    clock.now += timedelta(minutes=1)
    sched.tick()
    deliveries = {d.channel: d for d in store.registry.list_incidents(store.project)[0].deliveries}
    assert deliveries["oncall"].attempts == 2  # no more attempts
    sched.close()
    assert_no_secret(registry_rows(store), caplog.text)
    store.close()
