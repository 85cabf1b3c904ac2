#!/usr/bin/env bash
# The project's tests: static checks, unit and contract tests, and vm tests that boot real
# Debian kernels under QEMU. Kernel builds are marked slow and left to ci/nightly.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m mypy harness
"$PY" -m pytest -m "not slow" -ra "$@"
