#!/usr/bin/env bash
# The project's tests: static checks, unit and contract tests, and vm tests that boot real
# Debian kernels under QEMU. Kernel builds are marked slow and left to ci/nightly.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m ruff format --check --quiet .   # one format (pyproject.toml [tool.ruff])
"$PY" -m ruff check --quiet .            # pyflakes, pycodestyle, import order, pyupgrade, bugbear
"$PY" -m mypy                            # strict, over harness/ and tests/ (pyproject.toml [tool.mypy])
"$PY" -m pytest -m "not slow" -ra "$@"
