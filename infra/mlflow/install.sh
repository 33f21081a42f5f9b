#!/usr/bin/env bash
# Install the MLflow tracking server in its own virtual environment (.mlflow-venv), for the
# feature store's MLflow tests and for trying `featurestore mlflow ...` locally.
#
# Why its own venv: the full `mlflow` package (the server, its UI, Flask, graphene, matplotlib...)
# pins pyarrow<26, python-dateutil<3 and graphql-core<3.3, below what the project's .venv holds
# (pyarrow 26, schemathesis' graphql-core 3.3): uv would downgrade them. The project's .venv gets
# only `mlflow-skinny` (the client: tracking, model registry, pyfunc), which resolves with our pins.
# Client and server are the same MLflow version.
#
# Idempotent and fast when already installed: a stamp in the venv records what was installed, and
# a matching stamp with a working `mlflow` returns at once.
# Knobs: MLFLOW_VENV (default .mlflow-venv at the repository root), MLFLOW_PYTHON (the interpreter
# the venv is made from, default python3), UV (default .venv/bin/uv, else uv on PATH).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${MLFLOW_VENV:-$REPO/.mlflow-venv}"
PYTHON="${MLFLOW_PYTHON:-python3}"
# The newest release whose mlflow-skinny (the client in .venv, pyproject.toml's `mlflow` extra)
# the package index also serves: keep the two equal.
MLFLOW_VERSION="3.17.2"
SPEC="mlflow==$MLFLOW_VERSION"
STAMP="$VENV/.installed-mlflow"

# shellcheck source=../lib/tool-venv.sh
. "$REPO/infra/lib/tool-venv.sh"
if tool_venv_installed "$STAMP" "$SPEC" "$VENV/bin/mlflow"; then
    echo "mlflow: $MLFLOW_VERSION already installed in $VENV"
    exit 0
fi

started=$(date +%s)
echo "mlflow: installing mlflow $MLFLOW_VERSION into $VENV"
tool_venv_install mlflow "$VENV" "$PYTHON" "$STAMP" "$SPEC"
"$VENV/bin/mlflow" --version >/dev/null
echo "$SPEC" >"$STAMP"
echo "mlflow: installed in $(($(date +%s) - started)) s ($("$VENV/bin/mlflow" --version))"
