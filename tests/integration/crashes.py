"""Crashing runs from a test: the parent's side of ``_killable_run.py``.

:class:`RunServer` talks to ``_killable_run.py serve`` (a fork server: one child per run, no
interpreter start per crash) and :func:`start_run` starts a run in a fresh interpreter (Spark
runs, two runs at once). Either way a run is a request (see ``_killable_run.py``) and ends as an
:class:`Outcome`: killed by SIGKILL at its kill point or after a delay, finished, or failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KILLABLE_RUN = Path(__file__).with_name("_killable_run.py")
PHASES = ("computed", "staged", "committed", "online_batch", "derived", "settled")
"""The publish phases of ``etl.runs.CHECKPOINTS``, in the order a run reaches them."""
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "SPARK_LOCAL_IP": "127.0.0.1"}


@dataclass
class Outcome:
    """How a run in a child process ended."""

    returncode: int | None = None
    pid: int | None = None
    phases: list[tuple[str, int]] = field(default_factory=list)
    """Checkpoints the run reported reaching, in order (a kill lands after the last one)."""
    ready: tuple[str, int] | None = None
    """The kill point it stopped at, if it reached it."""
    result: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def last_phase(self) -> str | None:
        return self.phases[-1][0] if self.phases else None

    def describe(self) -> str:
        return f"exit {self.returncode}, phases {self.phases}, ready {self.ready}, failure {self.failure}"


class _Lines:
    """Lines from a pipe, with a deadline. Reads the file descriptor itself: a buffered reader
    may hold the next line already, where ``select`` would wait for more bytes in vain."""

    def __init__(self, stream: IO[str]) -> None:
        self.fd = stream.fileno()
        self._buffer = b""
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.fd, selectors.EVENT_READ)
        self.closed = False

    def read(self, deadline: float, what: str) -> str:
        """The next line ("" at the end of the stream)."""
        while b"\n" not in self._buffer:
            if self.closed:
                rest, self._buffer = self._buffer, b""
                return rest.decode()
            if not self._sel.select(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no word from {what} before the deadline")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.closed = True
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode() + "\n"

    def close(self) -> None:
        self._sel.close()


def _note(outcome: Outcome, line: str) -> None:
    outcome.lines.append(line)
    word, _, rest = line.strip().partition(" ")
    if word == "STARTED":
        outcome.pid = int(rest)
    elif word == "PHASE":
        phase, n = rest.split()
        outcome.phases.append((phase, int(n)))
    elif word == "READY":
        phase, n = rest.split()
        outcome.ready = (phase, int(n))
    elif word == "FINISHED":
        outcome.result = json.loads(rest)
    elif word == "FAILED":
        outcome.failure = json.loads(rest)
    elif word == "CLI":
        outcome.result = json.loads(rest)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended first
        os.kill(pid, signal.SIGKILL)


class RunServer:
    """``_killable_run.py serve``, started once: :meth:`run` runs one request in a forked child
    and kills it at its kill point (or ``kill_after`` seconds after it started)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._stderr = open(log, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, str(KILLABLE_RUN), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO,
            env=ENV,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin, self._stdout = self.proc.stdin, self.proc.stdout
        self._lines = _Lines(self._stdout)

    def run(self, request: dict[str, Any], *, kill_after: float | None = None, timeout: float = 120.0) -> Outcome:
        self._stdin.write(json.dumps(request) + "\n")
        self._stdin.flush()
        outcome = Outcome()
        deadline = time.monotonic() + timeout
        try:
            while True:
                line = self._lines.read(deadline, "the run")
                if not line:
                    pytest.fail(f"the run server died: {self.log.read_text()[-4000:]}")
                if line.startswith("EXIT "):
                    outcome.returncode = int(line.split()[2])
                    return outcome
                _note(outcome, line)
                if line.startswith("STARTED ") and kill_after is not None:
                    time.sleep(kill_after)
                    _kill(int(line.split()[1]))
                elif line.startswith("READY "):
                    assert outcome.pid is not None
                    _kill(outcome.pid)
        except TimeoutError:
            if outcome.pid is not None:
                _kill(outcome.pid)
            pytest.fail(
                f"the run did not end within {timeout:.0f} s: {outcome.describe()}\n{self.log.read_text()[-4000:]}"
            )

    def cli(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """``featurestore ARGS...`` in a child: the console script's entry point, in a process of
        its own, without an interpreter start per command."""
        outcome = self.run({"cli": list(args)}, timeout=timeout)
        assert outcome.result is not None, outcome.describe() + self.log.read_text()[-4000:]
        return subprocess.CompletedProcess(
            ["featurestore", *args], outcome.result["returncode"], outcome.result["stdout"], outcome.result["stderr"]
        )

    def close(self) -> None:
        self._lines.close()
        self._stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stdout.close()
        self._stderr.close()


class RunProcess:
    """A run in a fresh interpreter (``_killable_run.py run``)."""

    def __init__(self, request: dict[str, Any], log: Path) -> None:
        self.log = log
        self._stderr = open(log, "w")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, str(KILLABLE_RUN), "run", json.dumps(request)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO,
            env=ENV,
        )
        assert self.proc.stdout is not None
        self._stdout = self.proc.stdout
        self._lines = _Lines(self._stdout)
        self.outcome = Outcome()

    def wait_for(self, word: str, timeout: float = 180.0) -> None:
        """Read its report until a line starting with ``word`` (``STARTED``, ``PAUSED``, ``READY``...)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.read(deadline, "the run")
            except TimeoutError:
                self.proc.kill()
                pytest.fail(f"the run never said {word} within {timeout:.0f} s: {self.outcome.describe()}")
            if not line:
                self.proc.wait()
                pytest.fail(f"the run ended before {word}: {self.outcome.describe()}\n{self.log.read_text()[-4000:]}")
            _note(self.outcome, line)
            if line.startswith(word):
                return

    def kill(self) -> Outcome:
        self.proc.kill()
        return self.finish()

    def finish(self, timeout: float = 300.0) -> Outcome:
        """Read the rest of its report and wait for it to end."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.read(deadline, "the run")
            except TimeoutError:
                self.proc.kill()
                pytest.fail(f"the run did not end within {timeout:.0f} s: {self.outcome.describe()}")
            if not line:
                break
            _note(self.outcome, line)
        self.outcome.returncode = self.proc.wait(timeout=60)
        self._lines.close()
        self._stdout.close()
        self._stderr.close()
        return self.outcome

    def stderr(self) -> str:
        return self.log.read_text()


def blocked_on_a_file_lock(pid: int) -> bool:
    """Whether the process waits for a file lock: ``/proc/locks`` lists waiters as ``N: -> FLOCK ... PID ...``."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[5] == str(pid):
            return True
    return False
