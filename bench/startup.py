"""Start-up time: ``import featurestore``, ``featurestore --help`` and ``apply`` of the demo.

Also timed: importing the public definitions (``import featurestore`` alone loads them only on
first use) and one command's ``--help``.

Each command runs in a fresh interpreter ``--n`` times (11 by default, interleaved command by
command so that a busy machine slows all alike); the median wall time is printed next to the
floor, ``python -c pass``. The demo is a copy of ``examples/bank`` in a temporary folder with its
data generated (``examples/bank/generate_data.py``); ``apply`` is timed on that copy after one
untimed first apply (which creates the registry: printed apart), so it measures what a user's
repeated ``featurestore apply`` costs.

This machine sets PYTHONDONTWRITEBYTECODE=1, so the project's modules would be compiled from
source on every start. An installed package has its bytecode: the script compiles the project's
packages first (``compileall``, into ``__pycache__``) and runs the commands with the variable
unset; ``--no-bytecode`` also times them with it set (no cached bytecode of the project used).

    .venv/bin/python bench/startup.py [--n 11] [--no-bytecode] [--json]

Also printed: each command's median CPU time (user + system, the process and its threads),
which a loaded machine stretches far less than the wall time; and the heavy modules each command
imported (pandas, pyarrow, numpy, duckdb, ...), from ``python -X importtime``: ``import
featurestore`` and ``--help`` should import none.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("featurestore", "etl", "quality", "datamart", "registry_ui")
DEFINITIONS = "from featurestore import Entity, Feature, FeatureView, FileSource, Float64, InRange, Int64"
HEAVY = ("pandas", "pyarrow", "numpy", "duckdb", "sqlalchemy", "great_expectations", "pyspark", "fastapi", "redis")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of ``cmd``, in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(cmd: list[str], env: dict[str, str]) -> list[str]:
    """The top-level modules of ``HEAVY`` that ``cmd`` imports (``-X importtime`` on stderr)."""
    done = subprocess.run(cmd, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True, check=True)
    seen = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name in HEAVY:
                seen.add(name)
    return sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=11, help="fresh interpreters per command")
    parser.add_argument("--no-bytecode", action="store_true", help="also time with PYTHONDONTWRITEBYTECODE=1")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the table goes to stderr)")
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout

    python = sys.executable
    featurestore = str(Path(python).with_name("featurestore"))
    for package in PACKAGES:
        compileall.compile_dir(str(REPO / package), quiet=1, workers=1)
    with_bytecode = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    without_bytecode = {**with_bytecode, "PYTHONDONTWRITEBYTECODE": "1"}

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        demo = Path(tmp) / "bank"
        shutil.copytree(REPO / "examples" / "bank", demo, ignore=shutil.ignore_patterns("data", "__pycache__"))
        subprocess.run(
            [python, str(demo / "generate_data.py"), "--out", str(demo / "data" / "raw")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        apply_cmd = [featurestore, "-C", str(demo), "apply"]
        first_apply, first_apply_cpu = timed(apply_cmd, with_bytecode)
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "import featurestore": [python, "-c", "import featurestore"],
            # The package's public names load on first use: this is what a features.py pays.
            "from featurestore import ...": [python, "-c", DEFINITIONS],
            "featurestore --help": [featurestore, "--help"],
            "featurestore run --help": [featurestore, "run", "--help"],
            "featurestore apply (demo)": apply_cmd,
        }
        modes = {"bytecode": with_bytecode}
        if args.no_bytecode:
            modes["no bytecode"] = without_bytecode
        results: dict[str, dict[str, float]] = {}
        cpu: dict[str, dict[str, float]] = {}
        for mode, env in modes.items():
            for cmd in commands.values():  # warm the page cache
                timed(cmd, env)
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
            for _ in range(args.n):
                for name, cmd in commands.items():
                    samples[name].append(timed(cmd, env))
            results[mode] = {name: statistics.median(w for w, _ in s) for name, s in samples.items()}
            cpu[mode] = {name: statistics.median(c for _, c in s) for name, s in samples.items()}
        heavy = {name: heavy_imports(cmd, with_bytecode) for name, cmd in commands.items()}

    floor = results["bytecode"]["python -c pass"]
    print(
        f"median of {args.n} fresh interpreters; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=out
    )
    header = "".join(f"{mode:>14}{'(CPU)':>10}" for mode in results)
    print(f"  {'command':28}{header}   heavy modules imported", file=out)
    for name in commands:
        cells = "".join(f"{results[m][name] * 1000:11.0f} ms{cpu[m][name] * 1000:7.0f} ms" for m in results)
        print(f"  {name:28}{cells}   {', '.join(heavy[name]) or '-'}", file=out)
    print(
        f"  first apply (creates the registry, every view new): {first_apply * 1000:.0f} ms, "
        f"CPU {first_apply_cpu * 1000:.0f} ms (one run; the apply above is a repeat: nothing changed)",
        file=out,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "n": args.n,
                    "floor_s": round(floor, 4),
                    "median_s": {m: {k: round(v, 4) for k, v in r.items()} for m, r in results.items()},
                    "cpu_median_s": {m: {k: round(v, 4) for k, v in r.items()} for m, r in cpu.items()},
                    "heavy_imports": heavy,
                    "first_apply_s": round(first_apply, 3),
                    "first_apply_cpu_s": round(first_apply_cpu, 3),
                }
            )
        )


if __name__ == "__main__":
    main()
