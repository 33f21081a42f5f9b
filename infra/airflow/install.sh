#!/usr/bin/env bash
# Install Apache Airflow in its own virtual environment, for the feature store's Airflow test and
# for trying `featurestore airflow-dag` locally. Airflow pins many of its dependencies (SQLAlchemy,
# pydantic, FastAPI...) against ours, so it never goes into the project's .venv: the DAG's tasks
# call the `featurestore` command by its absolute path instead of importing our package.
#
# Idempotent and fast when already installed: a stamp in the venv records what was installed, and
# a matching stamp with a working `airflow` returns at once.
# Knobs: AIRFLOW_VENV (default .airflow-venv at the repository root), AIRFLOW_PYTHON (the
# interpreter the venv is made from, default python3), UV (default .venv/bin/uv, else uv on PATH).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${AIRFLOW_VENV:-$REPO/.airflow-venv}"
PYTHON="${AIRFLOW_PYTHON:-python3}"
# Airflow 3.x and the provider that holds BashOperator (airflow.providers.standard), pinned together.
AIRFLOW_VERSION="3.3.2"
STANDARD_PROVIDER_VERSION="1.21.0"
SPEC="apache-airflow==$AIRFLOW_VERSION apache-airflow-providers-standard==$STANDARD_PROVIDER_VERSION"
STAMP="$VENV/.installed-airflow"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SPEC" ] && [ -x "$VENV/bin/airflow" ]; then
    echo "airflow: $AIRFLOW_VERSION already installed in $VENV"
    exit 0
fi

if [ -n "${UV:-}" ]; then
    :
elif [ -x "$REPO/.venv/bin/uv" ]; then
    UV="$REPO/.venv/bin/uv"
elif command -v uv >/dev/null 2>&1; then
    UV="$(command -v uv)"
else
    echo "airflow: uv not found; run 'make install' first (it installs uv into .venv), or set UV" >&2
    exit 1
fi

started=$(date +%s)
echo "airflow: installing apache-airflow $AIRFLOW_VERSION into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$UV" venv --quiet --python "$PYTHON" "$VENV"
fi
rm -f "$STAMP"
# shellcheck disable=SC2086  # SPEC is a list of requirements
"$UV" pip install --quiet --python "$VENV/bin/python" $SPEC
"$VENV/bin/airflow" version >/dev/null
echo "$SPEC" >"$STAMP"
echo "airflow: installed in $(($(date +%s) - started)) s ($("$VENV/bin/airflow" version))"
