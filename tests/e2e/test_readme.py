"""The README's "Using it" section, run as printed: every line of its shell block in a fresh
``featurestore init`` project, then its Python block there. The lines are parsed from README.md,
so the test fails as soon as the README and the code disagree; each command must exit with
status 0 and print data (a check per subcommand below: a new command in the README needs one).

``serve`` and ``ui`` serve forever: each is started (on a free port instead of the printed one,
which another process may hold) and answers one HTTP request.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def using_it() -> tuple[list[str], str]:
    """The shell lines (comments removed) and the Python block of the README's "Using it"."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    shell = re.search(r"```bash\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert shell and python, "README's 'Using it' lost its bash or python block"
    lines = [line.split("#", 1)[0].strip() for line in shell.group(1).splitlines()]
    return [line for line in lines if line], python.group(1)


def _count(pattern: str, out: str) -> int:
    found = re.search(pattern, out)
    assert found, f"no match for {pattern!r} in:\n{out}"
    return int(found.group(1).replace(",", ""))


def _check_lookup(out: str, cwd: Path) -> bool:
    rows = json.loads(out)
    statuses = [v["status"] for row in rows for v in row.values() if isinstance(v, dict)]
    assert statuses and set(statuses) == {"present"}, out
    return True


def _check_training_set(out: str, cwd: Path) -> bool:
    assert _count(r"wrote ([\d,]+) rows to train\.parquet", out) > 0
    table = pq.read_table(cwd / "train.parquet")
    assert table.column("trips").null_count < table.num_rows, table.to_pandas()
    return True


CHECKS: dict[str, Callable[[str, Path], bool]] = {
    "apply": lambda out, cwd: "feature view driver_daily (version 1)" in out,
    "run": lambda out, cwd: _count(r"([\d,]+) rows offline", out) > 0,
    "runs": lambda out, cwd: _count(r"succeeded\s+rows=([\d,]+)", out) > 0,
    "check-consistency": lambda out, cwd: _count(r"(\d+) match, 0 differ", out) > 0,
    # Nothing is pending after complete runs: the answer says so (no rows to print).
    "repair": lambda out, cwd: "driver_daily: nothing pending" in out,
    "list": lambda out, cwd: "driver_daily" in out and "trips" in out,
    "describe": lambda out, cwd: '"name": "driver_daily"' in out,
    "lookup": _check_lookup,
    "training-set": _check_training_set,
    "reference-data": lambda out, cwd: _count(r"wrote ([\d,]+) rows to ref\.csv", out) > 0,
    "validate": lambda out, cwd: _count(r"on ([\d,]+) computed rows: PASSED", out) > 0,
    "stats": lambda out, cwd: _count(r"([\d,]+) rows published", out) > 0,
}
SERVED = {"serve": "/docs", "ui": "/"}


def _env() -> dict[str, str]:
    """The environment of a user who activated the venv: its bin first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _probe(argv: list[str], path: str, cwd: Path) -> None:
    port = _free_port()
    argv = [str(port) if prev == "--port" else a for prev, a in zip(["", *argv[:-1]], argv, strict=True)]
    log = cwd.parent / f"{argv[1]}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{argv} did not answer within 60 s"
                time.sleep(0.3)
        assert response.status_code == 200, response.text
        assert "driver" in response.text.lower() or "swagger" in response.text.lower(), response.text[:500]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.e2e
def test_readme_using_it_commands_work_as_printed(tmp_path: Path) -> None:
    lines, python = using_it()
    cwd = tmp_path
    checked: list[str] = []
    for line in lines:
        for command in (part.strip() for part in line.split("&&")):
            argv = shlex.split(command)
            if argv[0] == "cd":
                cwd = cwd / argv[1]
                continue
            assert argv[0] == "featurestore", f"README line is not a featurestore command: {line}"
            verb = argv[1]
            if verb == "init":
                proc = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
                assert proc.returncode == 0, proc.stdout + proc.stderr
                assert "created my_project/data/trips.csv" in proc.stdout, proc.stdout
                continue
            if verb in SERVED:
                _probe(argv, SERVED[verb], cwd)
                checked.append(verb)
                continue
            assert verb in CHECKS, f"the README runs `featurestore {verb}`: add a check for it to this test"
            proc = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"`{command}` exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            assert CHECKS[verb](proc.stdout, cwd), f"`{command}` printed no data:\n{proc.stdout}"
            checked.append(verb)
    assert set(checked) == set(CHECKS) | set(SERVED), checked

    # The Python block, as printed, in the same project; then what it computed is checked.
    script = (
        python
        + "\nimport json as _json\n"
        + "print(_json.dumps({'train_rows': train.num_rows, 'train_values': train.num_rows - "
        + "train.column('trips').null_count, 'statuses': sorted({s for v in online.statuses.values() for s in v}), "
        + "'ref_rows': ref.num_rows}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["train_rows"] == 3 and result["train_values"] == 3, proc.stdout
    assert result["statuses"] == ["present"], proc.stdout
    assert result["ref_rows"] == 3, proc.stdout
