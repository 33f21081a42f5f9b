"""The CLI's side of access control: tokens, the audit log, and serving beyond loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from featurestore.auth import check_bind_address, parse_duration
from featurestore.config import AuthConfig
from featurestore.errors import ConfigError, InvalidRequestError
from tests.unit.test_cli import applied_and_run, featurestore


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return applied_and_run(tmp_path / "shop")


def test_tokens_are_shown_once_listed_without_secret_revoked_and_audited(shop: Path) -> None:
    created = featurestore("-C", shop, "tokens", "create", "--name", "alice", "--role", "scientist", "--expires", "90d")
    assert created.code == 0, created.err
    secret = re.search(r"fst_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", created.out)
    assert secret is not None
    assert "not shown again" in created.err
    listed = featurestore("-C", shop, "tokens", "list")
    assert "alice" in listed.out and "scientist" in listed.out and "active" in listed.out
    assert secret.group(0) not in listed.out and secret.group(0)[17:] not in listed.out
    revoked = featurestore("-C", shop, "tokens", "revoke", "alice")
    assert revoked.code == 0 and "revoked token 'alice'" in revoked.out
    as_json = json.loads(featurestore("-C", shop, "tokens", "list", "--json").out)
    assert [(t["name"], t["status"]) for t in as_json] == [("alice", "revoked")]
    audit = featurestore("-C", shop, "audit").out
    for action in ("token.revoke", "token.create", "run", "apply"):
        assert action in audit
    assert "feature_view:customer_stats" in audit


def test_token_mistakes_say_what_to_do(shop: Path) -> None:
    no_model = featurestore("-C", shop, "tokens", "create", "--name", "svc", "--role", "service")
    assert no_model.code == 1 and "--model" in no_model.err
    unknown = featurestore("-C", shop, "tokens", "create", "--name", "svc", "--role", "service", "--model", "nope")
    assert unknown.code == 1 and "Model 'nope' not found" in unknown.err
    bad_name = featurestore("-C", shop, "tokens", "create", "--name", "a b", "--role", "analyst")
    assert bad_name.code == 1 and "not a valid name" in bad_name.err
    bad_expiry = featurestore("-C", shop, "tokens", "create", "--name", "x", "--role", "analyst", "--expires", "soon")
    assert bad_expiry.code == 1 and "e.g. 90d" in bad_expiry.err
    featurestore("-C", shop, "tokens", "create", "--name", "twice", "--role", "analyst")
    twice = featurestore("-C", shop, "tokens", "create", "--name", "twice", "--role", "analyst")
    assert twice.code == 1 and "already has an active token named 'twice'" in twice.err


def test_serving_beyond_loopback_needs_auth(shop: Path) -> None:
    for command in ("serve", "ui"):
        refused = featurestore("-C", shop, command, "--host", "0.0.0.0", "--port", "1")
        assert refused.code == 1
        assert "refusing to serve on 0.0.0.0 without authentication" in refused.err
        assert "featurestore tokens create --name admin --role admin" in refused.err


def test_bind_rule() -> None:
    off, on = AuthConfig(), AuthConfig(enabled=True)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind_address(host, off)
    for host in ("0.0.0.0", "::", "10.0.0.5", "features.bank.internal"):
        with pytest.raises(ConfigError):
            check_bind_address(host, off)
        check_bind_address(host, on)


def test_durations() -> None:
    assert parse_duration("90d").days == 90
    assert parse_duration("12h").total_seconds() == 12 * 3600
    for text in ("0d", "-1d", "d", "90", "1y"):
        with pytest.raises(InvalidRequestError):
            parse_duration(text)


def test_an_unexpected_error_prints_its_traceback_without_secrets(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from featurestore import secrets
    from featurestore.registry import Registry

    secrets.remember("hunter2-very-secret")

    def broken(self: Registry, project: str) -> None:
        raise RuntimeError("driver said: cannot reach redis://:hunter2-very-secret@10.0.0.1/0")

    monkeypatch.setattr(Registry, "list_feature_views", broken)
    outcome = featurestore("-C", shop, "list")
    assert outcome.code == 1
    assert "RuntimeError" in outcome.err and "Traceback" in outcome.err
    assert "hunter2-very-secret" not in outcome.err


def test_the_access_log_follows_the_project_file_unless_the_command_line_says(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.append(options))
    monkeypatch.setenv("FEATURESTORE_PROJECT_DIR", "")  # serve sets it for the app: restored after the test
    assert featurestore("-C", shop, "serve", "--port", "1").code == 0
    assert featurestore("-C", shop, "serve", "--port", "1", "--no-access-log").code == 0
    config = shop / "featurestore.yaml"
    config.write_text(config.read_text() + "\ndatamart: {access_log: false}\n")
    assert featurestore("-C", shop, "serve", "--port", "1").code == 0
    assert featurestore("-C", shop, "serve", "--port", "1", "--access-log").code == 0
    assert [o["access_log"] for o in seen] == [True, False, False, True]
