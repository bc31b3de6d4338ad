#!/usr/bin/env bash
# Set up .venv (CPU build of torch) if needed, then run the linter, the format check and the
# test suite. Extra arguments go to pytest, e.g. `bash run_tests.sh -k golden`.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
echo "installing test requirements into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

echo "ruff check and format check"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet .

echo "pytest"
.venv/bin/python -m pytest "$@"
