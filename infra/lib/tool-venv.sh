# Sourced by the install scripts of the tools that live in a venv of their own (infra/airflow,
# infra/mlflow, infra/feast: each pins dependencies against the project's .venv).
#
#   tool_venv_installed STAMP SPEC EXECUTABLE   true when STAMP records SPEC and EXECUTABLE runs
#   tool_venv_install NAME VENV PYTHON STAMP PIP_ARGS...
#       makes VENV from PYTHON when missing, forgets STAMP and installs PIP_ARGS with uv (UV, else
#       .venv/bin/uv, else uv on PATH); the caller checks the tool, then writes STAMP.

tool_venv_installed() {
    [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && [ -x "$3" ]
}

tool_venv_install() {
    local name=$1 venv=$2 python=$3 stamp=$4 repo
    shift 4
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    if [ -n "${UV:-}" ]; then
        :
    elif [ -x "$repo/.venv/bin/uv" ]; then
        UV="$repo/.venv/bin/uv"
    elif command -v uv >/dev/null 2>&1; then
        UV="$(command -v uv)"
    else
        echo "$name: uv not found; run 'make install' first (it installs uv into .venv), or set UV" >&2
        exit 1
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$UV" venv --quiet --python "$python" "$venv"
    fi
    rm -f "$stamp"
    "$UV" pip install --quiet --python "$venv/bin/python" "$@"
}
