"""Consistency under torture: whatever happens to a view's runs, online ends up holding exactly
each entity's latest offline row, including going back to an older row or removing the entity
when offline retracts rows.

Each case runs against the SQLite, Redis and Cassandra online stores (real servers, started by
the session fixtures) on the embedded engine; ``test_consistency_spark.py`` runs the Spark
engine's cases. After every run a case checks the view four ways (``Shop.assert_consistent``):
offline equals a plain-Python model of the source and the windows run; the checker finds 0
mismatched, missing and extra entities; an independent comparison reading the Parquet files of
the manifest and the online store's own client agrees; nothing is pending and no file is
orphaned. Each case ends with ``featurestore check-consistency VIEW --all`` at 0 differences.

Crashes are real: a run in a child process (``_killable_run.py``) is SIGKILLed at a publish
phase (``etl.runs.CHECKPOINTS``) or after a random delay, and the next run of the view (or
``featurestore repair``) must converge. ``FEATURESTORE_TORTURE_SEED`` repeats a random series.
Commands (``repair``, ``check-consistency``, ``run --backfill-from``) run the console script's
entry point in children of the same fork server, a few milliseconds each instead of a second
of interpreter start; the first repair of each store runs the installed ``featurestore`` itself.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from crashes import PHASES, RunProcess, RunServer, blocked_on_a_file_lock
from shop import (
    CORRECTED,
    DAYS,
    MAX_AMOUNT,
    N_USERS,
    ONLY_D3,
    ONLY_D8,
    QUIET_AFTER_D1,
    RECENT,
    SPEND,
    STEADY,
    D,
    Event,
    Shop,
    Window,
    raw_client,
)

import etl.runs
from featurestore.errors import RunError

STORES = ("sqlite", "redis", "cassandra")
per_store = pytest.mark.parametrize("online_store_config", STORES, indirect=True)
SEED = int(os.environ.get("FEATURESTORE_TORTURE_SEED", "20240301"))
RANDOM_KILLS = 20
"""Random crash points per store (each followed by the next run and every check)."""
WINDOWS: list[Window] = [(D[1], D[11]), (D[3], D[7]), (D[6], D[11]), (D[1], D[5]), (D[5], D[8]), (None, None)]


@pytest.fixture
def shop(
    request: pytest.FixtureRequest,
    online_store_config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_server: RunServer,
) -> Iterator[Shop]:
    # Several online batches per run in this process too, as in the crashed children.
    monkeypatch.setattr(etl.runs, "ONLINE_BATCH_ROWS", 8)
    project = Shop.create(tmp_path / "shop", online_store_config, raw_client(request, online_store_config))
    project.commands = run_server
    yield project
    project.close()


def transactional(shop: Shop) -> bool:
    return bool(type(shop.store.online_store).transactional_writes)


def killed_run_id(shop: Shop, view: str) -> str:
    (run,) = [r for r in shop.store.registry.list_runs(shop.store.project, view) if r.status == "running"]
    return run.id


def other_window(rng: random.Random, window: Window) -> Window:
    return rng.choice([w for w in WINDOWS if w != window])


# ---------------------------------------------------------------------------- retractions


@per_store
def test_a_rerun_whose_lookback_no_longer_sees_quiet_users_moves_them_back(shop: Shop) -> None:
    shop.run(RECENT)
    shop.assert_consistent(RECENT, "full run")
    at = {u: shop.online_row(RECENT, u) for u in (QUIET_AFTER_D1, ONLY_D3, STEADY)}
    assert {u: r.micros if r else None for u, r in at.items()} == {
        QUIET_AFTER_D1: shop.model_latest(RECENT)[(QUIET_AFTER_D1,)].micros,
        ONLY_D3: shop.model_latest(RECENT)[(ONLY_D3,)].micros,
        STEADY: shop.model_latest(RECENT)[(STEADY,)].micros,
    }
    latest_before = shop.model_latest(RECENT)

    # [D6, D12) with a day of lookback reads the source from D5: the rows at D6 and D7 (from the
    # events of D3 and D4) are no longer computed, and leave the window.
    result = shop.run(RECENT, D[6], D[12])
    assert result.rows_before > result.rows_offline >= result.rows_before / 2
    shop.assert_consistent(RECENT, "windowed re-run")
    quiet, gone, steady = (shop.online_row(RECENT, u) for u in (QUIET_AFTER_D1, ONLY_D3, STEADY))
    assert quiet is not None and quiet.micros == shop.model_latest(RECENT)[(QUIET_AFTER_D1,)].micros
    assert quiet.micros < latest_before[(QUIET_AFTER_D1,)].micros  # back to its older row (D4, of D1)
    assert quiet.values == {"spend": 10.0}
    assert gone is None  # its only row left offline: removed online
    assert steady == at[STEADY]
    removed = {u for (u,) in latest_before} - {u for (u,) in shop.model_latest(RECENT)}
    assert ONLY_D3 in removed
    assert result.rows_online_removed == len(removed)
    assert result.entities_affected == result.rows_online + result.rows_online_removed
    shop.assert_cli_consistent(RECENT)


@per_store
def test_a_source_correction_removing_a_users_newest_rows_moves_online_back(shop: Shop) -> None:
    shop.run(SPEND)
    shop.assert_consistent(SPEND, "full run")
    assert shop.online_row(SPEND, CORRECTED).values["spend"] == 180.5  # type: ignore[union-attr]
    # The events of D8 of two users were wrong: gone from the source.
    shop.set_day(8, [e for e in shop.source[8] if e.user not in (CORRECTED, ONLY_D8)])
    result = shop.run(SPEND, D[6], D[10])
    shop.assert_consistent(SPEND, "corrected window re-run")
    corrected = shop.online_row(SPEND, CORRECTED)
    assert corrected is not None
    # Back to the row of D5's events, published at D6: older than the watermark by more than the
    # TTL, so lookups withhold it, but online holds what offline says.
    assert (corrected.micros, corrected.values["spend"], corrected.values["n"]) == (
        shop.model_latest(SPEND)[(CORRECTED,)].micros,
        70.0,
        1,
    )
    assert shop.online_row(SPEND, ONLY_D8) is None
    assert result.rows_online_removed >= 1
    shop.assert_cli_consistent(SPEND)


@per_store
def test_an_empty_source_window_is_blocked_then_accepted_with_the_flag(shop: Shop) -> None:
    shop.run(SPEND)
    offline_before, online_before = shop.offline_tree(SPEND), shop.raw.dump(SPEND)
    published = sum(1 for _, at in shop.model[SPEND] if D[7].timestamp() * 1e6 <= at < D[11].timestamp() * 1e6)
    assert published > 0
    for day in (6, 7, 8, 9):  # the upstream export of four days came out empty
        shop.set_day(day, [])

    with pytest.raises(RunError) as blocked:
        shop.engine.run(SPEND, start=D[7], end=D[11], definitions=shop.definitions, progress=False)
    message = str(blocked.value)
    assert f"computed 0 row(s) where {published:,} are published" in message
    assert "--allow-row-drop" in message
    assert shop.offline_tree(SPEND) == offline_before  # byte for byte
    assert shop.raw.dump(SPEND) == online_before
    assert shop.pending(SPEND) == []
    assert shop.store.registry.list_runs(shop.store.project, SPEND)[0].status == "failed"
    shop.assert_consistent(SPEND, "blocked run")

    result = shop.run(SPEND, D[7], D[11], allow_row_drop=True)
    assert (result.rows_offline, result.rows_before) == (0, published)
    shop.assert_consistent(SPEND, "accepted with allow_row_drop")
    assert shop.online_row(SPEND, ONLY_D8) is None
    corrected = shop.online_row(SPEND, CORRECTED)
    assert corrected is not None and corrected.values["spend"] == 70.0
    shop.assert_cli_consistent(SPEND)


# ---------------------------------------------------------------------------- crashes


def assert_after_kill(shop: Shop, view: str, phase: str, manifest_before: bytes | None, run_id: str) -> None:
    """What a run killed at ``phase`` leaves, before anything repairs it."""
    pending = [p["run_id"] for p in shop.pending(view)]
    if phase in ("computed", "staged"):
        assert shop.manifest_bytes(view) == manifest_before, f"killed at {phase}: the manifest changed"
        assert pending == []
    elif phase in ("committed", "online_batch", "derived"):
        assert shop.manifest_bytes(view) != manifest_before
        assert pending == [run_id], f"killed at {phase}: pending {pending}"
    else:  # settled: all done but the run's record
        assert pending == []
    if phase in ("derived", "settled"):  # online already derived
        report = shop.store.check_consistency(view, sample=None)
        assert report.consistent, (phase, report.to_dict())


@per_store
def test_a_run_killed_at_every_publish_phase_converges_at_the_next_run(shop: Shop, run_server: RunServer) -> None:
    rng = random.Random(SEED)
    shop.run(SPEND)
    for i, phase in enumerate(PHASES):
        day = shop.mutate(rng)
        window = (D[max(1, day - 1)], D[min(15, day + 4)])
        occurrence = 2 if phase == "online_batch" and not transactional(shop) else 1
        manifest_before = shop.manifest_bytes(SPEND)
        outcome = shop.crash(run_server, SPEND, *window, kill={"phase": phase, "occurrence": occurrence})
        context = f"killed at {phase} #{occurrence}, window {window}"
        assert outcome.killed and outcome.ready == (phase, occurrence), outcome.describe()
        run_id = killed_run_id(shop, SPEND)
        assert_after_kill(shop, SPEND, phase, manifest_before, run_id)

        # The next run: of the same window, or of another one (the killed run's entities are
        # derived from its pending intent all the same).
        shop.run(SPEND, *(window if i % 2 == 0 else other_window(rng, window)))
        shop.assert_consistent(SPEND, context)
        (killed,) = [r for r in shop.store.registry.list_runs(shop.store.project, SPEND) if r.id == run_id]
        assert killed.status == "abandoned", context
    shop.assert_cli_consistent(SPEND)


@per_store
def test_runs_killed_at_random_points_converge_at_the_next_run(shop: Shop, run_server: RunServer) -> None:
    seed = SEED + STORES.index(shop.online_config["type"])
    rng = random.Random(seed)
    shop.run(SPEND)
    # How long a run takes in a child, from its start: random delays are drawn up to that.
    t0 = time.monotonic()
    calibration = shop.crash(run_server, SPEND, D[1], D[11])
    run_seconds = time.monotonic() - t0
    assert calibration.result is not None, calibration.describe()
    shop.assert_consistent(SPEND, "calibration run")
    batches = 1 if transactional(shop) else -(-(N_USERS + 10) // 8)
    landed: Counter[str] = Counter()
    kills = attempts = 0
    while kills < RANDOM_KILLS:
        attempts += 1
        assert attempts <= 3 * RANDOM_KILLS, f"only {kills} of {attempts} runs were killed (seed {seed}): {landed}"
        shop.mutate(rng)
        window = rng.choice(WINDOWS)
        if attempts % 2:
            phase = rng.choice(PHASES)
            kill = {"phase": phase, "occurrence": rng.randint(1, batches) if phase == "online_batch" else 1}
            outcome = shop.crash(run_server, SPEND, *window, kill=kill)
            point = f"{kill['phase']} #{kill['occurrence']}"
        else:
            delay = rng.uniform(0.0, run_seconds)
            outcome = shop.crash(run_server, SPEND, *window, kill_after=delay)
            point = f"{delay:.3f} s, after {outcome.last_phase}"
        context = f"seed {seed}, attempt {attempts}: window {window}, killed at {point}"
        if outcome.killed:
            kills += 1
            landed[outcome.last_phase or "before computed"] += 1
        else:
            assert outcome.returncode == 0 and outcome.result is not None, f"{context}: {outcome.describe()}"
        nxt = window if rng.random() < 0.5 else other_window(rng, window)
        shop.run(SPEND, *nxt)
        shop.assert_consistent(SPEND, f"{context}; next run {nxt}")
    # The crashes did land inside the publish, not only before or after it.
    assert sum(landed[p] for p in ("staged", "committed", "online_batch", "derived")) >= 5, landed
    shop.assert_cli_consistent(SPEND)


@per_store
def test_a_crash_then_featurestore_repair(shop: Shop, run_server: RunServer) -> None:
    rng = random.Random(SEED)
    shop.run(SPEND)
    for phase in ("staged", "committed", "online_batch", "derived"):
        day = shop.mutate(rng)
        occurrence = 3 if phase == "online_batch" and not transactional(shop) else 1
        outcome = shop.crash(
            run_server, SPEND, D[max(1, day - 2)], D[day + 2], kill={"phase": phase, "occurrence": occurrence}
        )
        assert outcome.killed, outcome.describe()
        # The first repair by the installed script itself, the others in forked children.
        repaired = shop.cli("repair", SPEND, "--no-progress", executable=phase == "staged")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        if phase == "staged":
            assert "nothing pending" in repaired.stdout, repaired.stdout
        else:
            assert "1 pending update(s) completed" in repaired.stdout, repaired.stdout
        shop.assert_consistent(SPEND, f"repaired after a kill at {phase}", orphans=True)

    # Online lost a value behind the feature store's back: the checker sees it, --repair fixes it.
    victim = next(iter(shop.raw.stored(SPEND)))
    _delete_raw(shop, SPEND, victim)
    found = shop.cli("check-consistency", SPEND, "--all")
    assert found.returncode == 2 and "1 missing online" in found.stdout, found.stdout + found.stderr
    fixed = shop.cli("check-consistency", SPEND, "--all", "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired:" in fixed.stdout
    shop.assert_consistent(SPEND, "check-consistency --repair", orphans=True)
    shop.run(SPEND, D[8], D[11])  # removes what the killed runs left unpublished
    shop.assert_consistent(SPEND, "the next run")
    shop.assert_cli_consistent(SPEND)


def _delete_raw(shop: Shop, view: str, entity: str) -> None:
    raw = shop.raw
    if raw.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(raw.config["path"], isolation_level=None) as conn:
            conn.execute(f'DELETE FROM "fv_{view}" WHERE entity_key = ?', (entity,))
        conn.close()
    elif raw.kind == "redis":
        prefix = raw.config.get("key_prefix") or raw.project
        assert raw.client.delete(f"{prefix}:{view}:{entity}") == 1
    else:
        raw.client.execute(f'DELETE FROM "{raw.config["keyspace"]}"."fv_{view}" WHERE entity_key = %s', (entity,))


# ---------------------------------------------------------------------------- history


@per_store
def test_a_new_feature_reads_as_null_on_old_windows_until_a_backfill_fills_it(shop: Shop) -> None:
    shop.run(SPEND)
    rows_before = len(shop.model[SPEND])
    # The source keeps a week: the events of D1 and D2 are gone, their rows only offline now.
    for day in (1, 2):
        shop.set_day(day, [])
    old_rows = {k: v for k, v in shop.model[SPEND].items() if k[1] < D[4].timestamp() * 1e6}
    assert old_rows

    shop.add_max_amount()
    assert shop.store.registry.view_version(shop.store.project, SPEND) == 2
    # Old windows read the new feature as null: training sets, reference data, the checker.
    users = list(range(1, 11))
    spine = pa.table(
        {
            "user_id": pa.array(users * 2, pa.int64()),
            "event_timestamp": pa.array([D[5]] * 10 + [D[10] + timedelta(hours=1)] * 10, pa.timestamp("us", "UTC")),
        }
    )
    training = shop.store.get_training_set(spine, [f"{SPEND}:spend", f"{SPEND}:{MAX_AMOUNT}"])
    assert training.column(MAX_AMOUNT).null_count == training.num_rows
    assert training.column("spend").null_count < training.num_rows
    reference = shop.store.get_reference_data(SPEND, D[12], include_expired=True)
    assert reference.num_rows == len(shop.model_latest(SPEND))
    assert reference.column(MAX_AMOUNT).null_count == reference.num_rows
    shop.assert_consistent(SPEND, "a feature added, nothing run yet")

    # The backfill, as a user runs it: recomputes from D1, keeps what the source no longer holds.
    proc = shop.cli("run", SPEND, "--backfill-from", "2024-03-01", "--end", "2024-03-11", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shop.published(SPEND, D[1], D[11], merge=True)
    assert len(shop.model[SPEND]) == rows_before
    offline = shop.offline_rows(SPEND)
    assert {k: offline[k] for k in old_rows} == {k: {**v, MAX_AMOUNT: None} for k, v in old_rows.items()}
    filled = [v for k, v in offline.items() if k not in old_rows]
    assert filled and all(v[MAX_AMOUNT] is not None for v in filled)
    shop.assert_consistent(SPEND, "after --backfill-from")
    online = shop.online(SPEND)
    assert any(r.values.get(MAX_AMOUNT) is not None for r in online.values())
    shop.assert_cli_consistent(SPEND)


@per_store
def test_a_backfill_of_an_older_window_and_late_rows_keep_the_newest_online(shop: Shop) -> None:
    shop.run(SPEND, D[6], D[11])
    shop.assert_consistent(SPEND, "newer window")
    newer = shop.online(SPEND)
    result = shop.run(SPEND, D[1], D[6])
    shop.assert_consistent(SPEND, "older window after the newer")
    online = shop.online(SPEND)
    assert all(online[k] == row for k, row in newer.items()), "an older window replaced a newer row online"
    assert set(online) > set(newer)
    assert result.rows_online_removed == 0

    # Late events: an old one of a user with newer rows, one of a new user, and a newer one.
    user = next(u for (u,) in newer if (u,) in online and u <= N_USERS)
    late_old = Event(user, D[2] + timedelta(hours=3), 12.5)
    late_new_user = Event(999, D[2] + timedelta(hours=4), 7.5)
    late_newer = Event(user, D[10] + timedelta(hours=5), 3.0)
    shop.set_day(2, [*shop.source[2], late_old, late_new_user])
    shop.set_day(10, [late_newer])
    shop.run(SPEND, D[1], D[6])
    shop.assert_consistent(SPEND, "late old rows")
    assert shop.online_row(SPEND, user) == newer[(user,)]  # newer still wins online
    new_user = shop.online_row(SPEND, 999)
    assert new_user is not None and new_user.values["spend"] == 7.5
    shop.run(SPEND, D[6], D[12])
    shop.assert_consistent(SPEND, "a late newer row")
    assert shop.online_row(SPEND, user).values["spend"] == 3.0  # type: ignore[union-attr]
    shop.assert_cli_consistent(SPEND)


# ---------------------------------------------------------------------------- two runs at once


@per_store
def test_two_runs_of_one_view_at_once_take_turns(shop: Shop, tmp_path: Path) -> None:
    shop.run(SPEND)
    rng = random.Random(SEED)
    for _ in range(3):
        shop.mutate(rng)
    gate = tmp_path / "gate"
    first_window, second_window = (D[1], D[7]), (D[5], D[12])
    first = RunProcess(
        shop.request(SPEND, *first_window, pause={"phase": "computed", "until": str(gate)}), tmp_path / "first.err"
    )
    first.wait_for("PAUSED")
    second = RunProcess(shop.request(SPEND, *second_window), tmp_path / "second.err")
    second.wait_for("STARTED")
    # The second waits for the view's lock (the kernel lists it as blocked on a file lock), and
    # has not even recorded its start.
    assert second.outcome.pid is not None
    deadline = time.monotonic() + 60
    while not blocked_on_a_file_lock(second.outcome.pid):
        assert time.monotonic() < deadline, "the second run never waited for the lock"
        time.sleep(0.05)
    running = [r for r in shop.store.registry.list_runs(shop.store.project, SPEND) if r.status == "running"]
    assert len(running) == 1, running
    gate.touch()
    a, b = first.finish(), second.finish()
    assert a.returncode == 0 and a.result is not None, a.describe() + first.stderr()
    assert b.returncode == 0 and b.result is not None, b.describe() + second.stderr()
    assert ("computed", 1) in b.phases
    runs = {r.id: r for r in shop.store.registry.list_runs(shop.store.project, SPEND)}
    ra, rb = runs[a.result["run_id"]], runs[b.result["run_id"]]
    assert (ra.status, rb.status) == ("succeeded", "succeeded")
    assert ra.finished_at is not None and rb.started_at >= ra.finished_at
    shop.published(SPEND, *first_window)
    shop.published(SPEND, *second_window)
    shop.assert_consistent(SPEND, "two runs at once")
    shop.assert_cli_consistent(SPEND)


def test_the_source_has_every_day_the_cases_rely_on() -> None:
    """The special users' events are where the docstrings of ``shop.py`` say."""
    from shop import base_source

    source = base_source()
    assert set(source) == set(DAYS)
    days = {
        u: sorted({(e.ts - D[1]).days + 1 for d in DAYS for e in source[d] if e.user == u}) for u in range(901, 906)
    }
    assert days == {QUIET_AFTER_D1: [1, 4], ONLY_D3: [3], STEADY: [4, 7], CORRECTED: [2, 5, 8], ONLY_D8: [8]}
