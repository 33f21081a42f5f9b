"""A run of one feature view that stops at a chosen point and waits to be killed (SIGKILL).

Used by ``test_consistency.py`` to crash a run deterministically: at the kill point this process
prints ``READY`` and sleeps; the test then kills it. Not a test module (no ``test_`` prefix).

    python _killable_run.py PROJECT_DIR VIEW START END KILL_POINT BATCH_ROWS

Kill points:

* ``online_write``: during the online write. A store writing in batches has finished its first
  batch; a transactional store (SQLite) is inside its one transaction with rows inserted but not
  committed.
* ``offline_commit``: the online write has finished; the offline publish is not committed yet.
* ``run_record``: both stores are published; the registry does not know yet (no watermark).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import etl.local
from etl.local import LocalEngine
from featurestore.offline.parquet import StagedPublish
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project


def wait_to_be_killed() -> NoReturn:
    print("READY", flush=True)
    while True:
        time.sleep(60)


def main() -> None:
    root, view, start, end, kill_point, batch_rows = sys.argv[1:7]
    etl.local.ONLINE_BATCH_ROWS = int(batch_rows)  # several online batches for a small view
    store = FeatureStore(Path(root))
    online = store.online_store
    if kill_point == "online_write":
        if getattr(online, "transactional_writes", False):
            if not isinstance(online, SqliteOnlineStore):
                sys.exit(f"no way to stop {type(online).__name__} inside its transaction")
            conn: sqlite3.Connection = online._conn()

            def inside_transaction() -> int:
                if conn.in_transaction and conn.total_changes > 0:
                    wait_to_be_killed()
                return 0

            conn.set_progress_handler(inside_transaction, 50)
        else:
            inner = online.write
            calls = 0

            def write_then_stop(*args: Any, **kwargs: Any) -> Any:
                nonlocal calls
                calls += 1
                if calls == 2:  # the first batch is written
                    wait_to_be_killed()
                return inner(*args, **kwargs)

            online.write = write_then_stop  # type: ignore[method-assign]
    elif kill_point == "offline_commit":
        StagedPublish.commit = lambda self: wait_to_be_killed()  # type: ignore[method-assign]
    elif kill_point == "run_record":
        finish_run = store.registry.finish_run

        def record_then_stop(run_id: str, **kwargs: Any) -> None:
            if kwargs.get("status") == "succeeded":
                wait_to_be_killed()
            finish_run(run_id, **kwargs)

        store.registry.finish_run = record_then_stop  # type: ignore[method-assign]
    else:
        sys.exit(f"unknown kill point {kill_point!r}")
    definitions = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
    LocalEngine(store).run(
        view,
        start=datetime.fromisoformat(start),
        end=datetime.fromisoformat(end),
        definitions=definitions,
        progress=False,
    )
    print("FINISHED", flush=True)  # the kill point was never reached


if __name__ == "__main__":
    main()
