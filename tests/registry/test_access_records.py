"""API tokens and the audit log as the registry keeps them, on SQLite and on PostgreSQL: times
come back aware UTC, a token authenticates until revoked or expired, the audit log lists the
newest change first, and two processes creating a token of the same name at once make one."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from featurestore.errors import AuthenticationError, InvalidRequestError
from featurestore.registry import Registry

PROJECT = "cards"
CREATORS = 4


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    reg = Registry(registry_url)
    yield reg
    reg.close()


def test_a_token_authenticates_until_revoked_and_every_change_is_audited(registry: Registry) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
    record, secret = registry.create_token(PROJECT, "ci", "engineer", actor="admin", expires_at=expires)
    assert (record.role, record.expires_at, record.created_at.tzinfo) == ("engineer", expires, UTC)
    assert secret not in repr(registry.tokens(PROJECT))

    identity = registry.authenticate_token(secret)
    assert (identity.name, identity.project, identity.role.value) == ("ci", PROJECT, "engineer")
    used = registry.get_token(PROJECT, "ci").last_used_at
    assert used is not None and used.tzinfo is UTC

    registry.revoke_token(PROJECT, "ci", actor="admin")
    with pytest.raises(AuthenticationError, match="was revoked"):
        registry.authenticate_token(secret)
    assert [(a.action, a.actor, a.target) for a in registry.audit_log(PROJECT)] == [
        ("token.revoke", "admin", "token:ci"),
        ("token.create", "admin", "token:ci"),
    ]
    assert all(a.at.tzinfo is UTC for a in registry.audit_log(PROJECT))


def create(url: str, barrier: Any, queue: Any) -> None:
    registry = Registry(url)
    try:
        barrier.wait(timeout=120)
        registry.create_token(PROJECT, "deploy", "engineer", actor="admin")
        queue.put("created")
    except InvalidRequestError as err:
        queue.put(f"refused: {err}")
    except BaseException as err:
        queue.put(f"failed: {type(err).__name__}: {err}")
    finally:
        registry.close()


def test_processes_creating_a_token_of_one_name_at_once_make_one(registry_url: str) -> None:
    Registry(registry_url).close()  # the schema first: this test is about the tokens
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(CREATORS), ctx.Queue()
    processes = [ctx.Process(target=create, args=(registry_url, barrier, queue)) for _ in range(CREATORS)]
    for p in processes:
        p.start()
    outcomes = sorted(queue.get(timeout=300) for _ in processes)
    for p in processes:
        p.join(timeout=60)

    assert [o.split(":")[0] for o in outcomes] == ["created"] + ["refused"] * (CREATORS - 1), outcomes
    assert all("already has an active token named 'deploy'" in o for o in outcomes[1:])
    registry = Registry(registry_url)
    try:
        assert [t.name for t in registry.tokens(PROJECT)] == ["deploy"]
        assert [a.action for a in registry.audit_log(PROJECT)] == ["token.create"]
    finally:
        registry.close()
