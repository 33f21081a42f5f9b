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

# shellcheck source=../lib/tool-venv.sh
. "$REPO/infra/lib/tool-venv.sh"
if tool_venv_installed "$STAMP" "$SPEC" "$VENV/bin/airflow"; then
    echo "airflow: $AIRFLOW_VERSION already installed in $VENV"
    exit 0
fi

started=$(date +%s)
echo "airflow: installing apache-airflow $AIRFLOW_VERSION into $VENV"
# shellcheck disable=SC2086  # SPEC is a list of requirements
tool_venv_install airflow "$VENV" "$PYTHON" "$STAMP" $SPEC
"$VENV/bin/airflow" version >/dev/null
echo "$SPEC" >"$STAMP"
echo "airflow: installed in $(($(date +%s) - started)) s ($("$VENV/bin/airflow" version))"
