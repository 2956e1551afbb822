#!/usr/bin/env bash
# Set up a virtual environment with the test extras, then lint (ruff), type-check (mypy,
# scripts/typecheck.py) and run the whole test suite; any of the three failing fails.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# A CPU build of torch: prefer the wheel shipped on the machine, else PyPI's CPU index name.
if ! python -c "import torch" 2>/dev/null; then
    whl=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)
    if [ -n "$whl" ]; then python -m pip install -q "$whl"; else python -m pip install -q "torch==2.13.0" || python -m pip install -q torch; fi
fi
# tree-sitter / tmux are used by the test-suite (tmux for the end-to-end TUI test).
if ! command -v tmux >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq tmux) >/dev/null 2>&1 || echo "warning: could not install tmux" >&2
fi
# llama-cpp-python builds from source (a few minutes the first time; pip caches the wheel).
python -m pip install -q -e ".[test]"
echo "ruff check…"
python -m ruff check .
echo "mypy…"
python scripts/typecheck.py
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
