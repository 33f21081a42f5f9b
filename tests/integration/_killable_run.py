"""Runs of a feature view that stop at a chosen publish phase, to be killed there (SIGKILL).

Used by the consistency suites to crash runs deterministically, or at random. Not a test module
(no ``test_`` prefix). A run is described by one JSON object (a *request*)::

    {"root": PROJECT_DIR, "view": VIEW, "start": ISO | null, "end": ISO | null,
     "engine": "local" | "spark",           # default local
     "kill": {"phase": "online_batch", "occurrence": 2} | null,
     "pause": {"phase": "computed", "until": FILE} | null,
     "batch_rows": 40,                       # etl.runs.ONLINE_BATCH_ROWS, for several online batches
     "allow_row_drop": false, "merge": false}

or, for a push instead of a run, ``{"root": ..., "view": ..., "push": [ROW, ...], "kill": ...}``
(rows as ``etl.push.push`` takes them, times as ISO 8601 strings with an offset).

The run reports on stdout, one line each: ``STARTED <pid>`` just before the run begins,
``PHASE <name> <n>`` at the n-th time it reaches each checkpoint of ``etl.runs.CHECKPOINTS``
(``computed``, ``staged``, ``committed``, ``online_batch``, ``derived``, ``settled``), then
``READY <name> <n>`` if that is the kill point (it then sleeps until killed), and
``FINISHED <json>`` (the run's result) or ``FAILED <json>`` (the error) if it ends. ``pause``
stops at the phase until the file ``until`` exists, then goes on (two runs at once). A kill
after a random delay is the caller's: it kills the process that many seconds after ``STARTED``.

A request ``{"cli": [ARGS...]}`` instead runs the command line, ``featurestore ARGS...``, and
reports ``CLI <json>`` (its exit code, stdout and stderr).

Two ways to start runs:

* ``python _killable_run.py run REQUEST_JSON``: one run in this process.
* ``python _killable_run.py serve``: a fork server. It imports everything once, then reads one
  request per line on stdin and forks a child per request, which prints the lines above (the
  ``STARTED`` line names the child's pid, the one to kill). When the child ends, the server prints
  ``EXIT <pid> <returncode>`` (``-9`` for SIGKILL). A child costs milliseconds instead of the
  second a fresh interpreter spends importing, which keeps a suite of a hundred crashes fast. The
  server holds no connection or thread before it forks: each child opens its own stores.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import etl.runs
import featurestore.cli  # noqa: F401 - imported once by the fork server, not per command
from etl.local import LocalEngine
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_to_be_killed() -> NoReturn:
    while True:
        time.sleep(60)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def run(request: dict[str, Any]) -> None:
    """One run as the request says, reporting its phases (module docs)."""
    etl.runs.ONLINE_BATCH_ROWS = int(request.get("batch_rows", etl.runs.ONLINE_BATCH_ROWS))
    kill = request.get("kill") or {}
    pause = request.get("pause") or {}
    reached: Counter[str] = Counter()

    def checkpoint(phase: str) -> None:
        reached[phase] += 1
        n = reached[phase]
        say(f"PHASE {phase} {n}")
        if phase == kill.get("phase") and n == int(kill.get("occurrence", 1)):
            say(f"READY {phase} {n}")
            wait_to_be_killed()
        if phase == pause.get("phase") and n == 1:
            say(f"PAUSED {phase} {n}")
            gate = Path(pause["until"])
            while not gate.exists():
                time.sleep(0.02)

    etl.runs.CHECKPOINTS[:] = [checkpoint]
    if "push" in request:  # a push of these rows instead of a run (times as ISO 8601 strings)
        from etl.push import push

        with FeatureStore(Path(request["root"])) as store:
            say(f"STARTED {os.getpid()}")
            pushed = push(store, request["view"], request["push"])
        say("FINISHED " + json.dumps(asdict(pushed), default=str))
        return
    with FeatureStore(Path(request["root"])) as store:
        definitions = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
        if request.get("engine", "local") == "spark":
            from etl.spark import SparkEngine  # pyspark loads only for Spark runs

            engine: Any = SparkEngine(store)
        else:
            engine = LocalEngine(store)
        say(f"STARTED {os.getpid()}")
        result = engine.run(
            request["view"],
            start=_time(request.get("start")),
            end=_time(request.get("end")),
            definitions=definitions,
            progress=False,
            allow_row_drop=bool(request.get("allow_row_drop", False)),
            merge=bool(request.get("merge", False)),
        )
    say("FINISHED " + json.dumps(asdict(result), default=str))


def command_line(args: list[str]) -> int:
    """``featurestore ARGS...``: the console script's own entry point, output captured."""
    import contextlib
    import io

    from featurestore.cli import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args=args, prog_name="featurestore")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    say("CLI " + json.dumps({"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}))
    return code


def run_reporting_failure(request: dict[str, Any]) -> int:
    if "cli" in request:
        return command_line(list(request["cli"]))
    try:
        run(request)
    except Exception as err:  # reported to the caller, who decides whether it was expected
        say("FAILED " + json.dumps({"type": type(err).__name__, "message": str(err)}))
        return 1
    return 0


def serve() -> None:
    """The fork server (module docs): one child per request line, reaped before the next."""
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the server's loop
            code = 1
            try:
                sys.stdin.close()
                code = run_reporting_failure(request)
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        say(f"EXIT {pid} {os.waitstatus_to_exitcode(status)}")


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "serve" and len(sys.argv) == 2:
        serve()
    elif mode == "run" and len(sys.argv) == 3:
        sys.exit(run_reporting_failure(json.loads(sys.argv[2])))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve | run REQUEST_JSON")


if __name__ == "__main__":
    main()
