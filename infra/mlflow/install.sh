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

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SPEC" ] && [ -x "$VENV/bin/mlflow" ]; then
    echo "mlflow: $MLFLOW_VERSION already installed in $VENV"
    exit 0
fi

if [ -n "${UV:-}" ]; then
    :
elif [ -x "$REPO/.venv/bin/uv" ]; then
    UV="$REPO/.venv/bin/uv"
elif command -v uv >/dev/null 2>&1; then
    UV="$(command -v uv)"
else
    echo "mlflow: uv not found; run 'make install' first (it installs uv into .venv), or set UV" >&2
    exit 1
fi

started=$(date +%s)
echo "mlflow: installing mlflow $MLFLOW_VERSION into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$UV" venv --quiet --python "$PYTHON" "$VENV"
fi
rm -f "$STAMP"
"$UV" pip install --quiet --python "$VENV/bin/python" "$SPEC"
"$VENV/bin/mlflow" --version >/dev/null
echo "$SPEC" >"$STAMP"
echo "mlflow: installed in $(($(date +%s) - started)) s ($("$VENV/bin/mlflow" --version))"
