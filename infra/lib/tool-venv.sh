# Sourced by the install scripts of the tools that live in a venv of their own (infra/airflow,
# infra/mlflow, infra/feast: each pins dependencies against the project's .venv).
#
#   tool_venv_installed STAMP SPEC EXECUTABLE   true when STAMP records SPEC, EXECUTABLE runs and
#       the venv (STAMP's folder) is compiled to bytecode at the levels TOOL_VENV_OPTIMIZE says
#   tool_venv_install NAME VENV PYTHON STAMP PIP_ARGS...
#       makes VENV from PYTHON when missing, forgets STAMP and installs PIP_ARGS with uv (UV, else
#       .venv/bin/uv, else uv on PATH), then compiles VENV; the caller checks the tool, then writes STAMP.
#
# Bytecode: these machines set PYTHONDONTWRITEBYTECODE=1 (CI may too), so a venv whose .pyc files
# are not written at install compiles every module it imports, in every process, every time:
# `import feast` took 13.8 s of CPU so, 6.5 s with .pyc files (2026-11-29). uv does not compile by
# default; compileall does it once here (levels in TOOL_VENV_OPTIMIZE, default "0": "0 1" also
# writes the .opt-1.pyc files `python -O` reads). A venv installed before it counts as not installed,
# so the next run of its install script compiles it (uv then finds everything installed).

tool_venv_compiled() {
    [ "$(cat "$1/.compiled-bytecode" 2>/dev/null)" = "${TOOL_VENV_OPTIMIZE:-0}" ]
}

tool_venv_installed() {
    [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && [ -x "$3" ] && tool_venv_compiled "$(dirname "$1")"
}

tool_venv_compile() {
    local venv=$1 level levels=()
    for level in ${TOOL_VENV_OPTIMIZE:-0}; do
        levels+=(-o "$level")
    done
    rm -f "$venv/.compiled-bytecode"
    # -qq and the status ignored: a file that does not compile (a template shipped as .py) is left
    # to whoever imports it, as without this step.
    "$venv/bin/python" -m compileall -qq -j 0 "${levels[@]}" "$venv/lib" || true
    echo "${TOOL_VENV_OPTIMIZE:-0}" >"$venv/.compiled-bytecode"
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
    tool_venv_compile "$venv"
}
