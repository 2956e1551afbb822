#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (CPU only) from the llama.cpp sources vendored in the
# llama-cpp-python sdist of the version this project pins, and cache the binary.
#
# Usage: bash scripts/build_llama_server.sh            # prints the path of the cached binary
#   TMAX_LLAMA_SERVER_CACHE=DIR   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/tmax-local/llama-server)
#   LLAMA_CPP_PYTHON_VERSION=X    sdist version (default: the installed llama-cpp-python's)
#   JOBS=N                        parallel compile jobs (default 2)
#   NICE_LEVEL=N                  niceness of the compile (default 10: others keep the CPU)
#   TMAX_LLAMA_SERVER_CACHED_ONLY=1  only print a cached binary (exit 3 when there is none)
#
# The binary is cached per version; a second run prints the cached path at once.
# The remote-engine end-to-end tests call this script (see tests/conftest.py); so may CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# The installed binding's version, else the version the project was built and tested with.
VERSION=${LLAMA_CPP_PYTHON_VERSION:-$("$PY" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || echo 0.3.36)}
ROOT=${TMAX_LLAMA_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tmax-local/llama-server}
DEST="$ROOT/$VERSION"
BIN="$DEST/llama-server"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
if [ -n "${TMAX_LLAMA_SERVER_CACHED_ONLY:-}" ]; then
    echo "llama-server is not built yet: run bash scripts/build_llama_server.sh" >&2; exit 3
fi

mkdir -p "$ROOT"
# One build at a time (parallel test runs wait for it, then use its result).
exec 9>"$ROOT/.build.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
WORK=$(mktemp -d "$ROOT/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "building llama-server from llama-cpp-python $VERSION sources (minutes)..." >&2
"$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi
# No web UI (it would be downloaded or built with npm), no curl/OpenSSL, no tests or examples.
cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DGGML_NATIVE=ON >&2
nice -n "${NICE_LEVEL:-10}" cmake --build "$WORK/build" --target llama-server -j "${JOBS:-2}" >&2
mkdir -p "$DEST.tmp"
cp "$WORK/build/bin/llama-server" "$DEST.tmp/llama-server"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "$BIN"
