#!/usr/bin/env bash
# Install Feast in its own virtual environment (.venv-feast), for `featurestore import-feast` (it
# reads a Feast repository with Feast's own SDK), the Feast-client and differential tests, and
# bench/feast_reference.py.
#
# Why its own venv: Feast pins its own dependencies (redis<8, pyarrow and pandas ranges, SQLAlchemy,
# dask...) against the project's; uv would downgrade the project's .venv. What it installs is
# bench/requirements-feast.txt (feast[redis] 0.67).
#
# Idempotent and fast when already installed: a stamp in the venv records what was installed (the
# requirements file's content), and a matching stamp with a working `feast` returns at once.
# Compiled to bytecode at install, both levels (see infra/lib/tool-venv.sh): the tests run Feast's
# side with `python -O` (tests/integration/feast_project.py says why), `import-feast` without.
#
# Knobs: FEAST_VENV (default .venv-feast at the repository root), FEAST_PYTHON (the interpreter
# the venv is made from, default python3), UV (default .venv/bin/uv, else uv on PATH).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${FEAST_VENV:-$REPO/.venv-feast}"
PYTHON="${FEAST_PYTHON:-python3}"
REQUIREMENTS="$REPO/bench/requirements-feast.txt"
SPEC="$(grep -v '^\s*#' "$REQUIREMENTS" | grep -v '^\s*$' | tr '\n' ' ')"
STAMP="$VENV/.installed-feast"

TOOL_VENV_OPTIMIZE="0 1"

# shellcheck source=../lib/tool-venv.sh
. "$REPO/infra/lib/tool-venv.sh"
if tool_venv_installed "$STAMP" "$SPEC" "$VENV/bin/feast"; then
    echo "feast: already installed in $VENV ($SPEC)"
    exit 0
fi

started=$(date +%s)
echo "feast: installing $SPEC into $VENV"
tool_venv_install feast "$VENV" "$PYTHON" "$STAMP" -r "$REQUIREMENTS"
"$VENV/bin/feast" version >/dev/null
echo "$SPEC" >"$STAMP"
echo "feast: installed in $(($(date +%s) - started)) s (feast $("$VENV/bin/python" -c "import feast; print(feast.__version__)"))"
