#!/usr/bin/env bash
# The nightly pipeline: what is too slow for every change (.ci/run). Sections are appended by
# whoever adds a nightly job (above the final `exit` line); each runs on its own and the
# script fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
failed=0

# --- kernels from source: fetch the Debian 6.12 source, build it with
# kernels/lean.config + kernels/cow.config (~15-20 min at -j2 with a cold ccache, a few minutes
# warm), and run our cow suite with upstream mm/cow and mm/gup_longterm on it, cross-checked.
"$PY" -m pytest -m slow -ra tests/slow/test_slow_source_build.py || failed=1
# The three long-term pinners (gup_test, harness_pin, RDMA) on one kernel built with all of them.
"$PY" -m pytest -m slow -ra tests/slow/test_slow_pinners.py || failed=1

# --- kernel matrix, and what changed since last night: the newest package of every
# Debian kernel line whose packages are complete (debian:lines: 6.1, 6.12, 6.16, 6.17, 6.18, 7.2,
# 7.3 as of 2026-12), side by side (-j 2, one guest per core), every default case on each; then
# the lines whose modules are missing from the archive (6.19, 7.0, 7.1) on their own, which
# cannot run the disk and probe cases and so are not expected to be green. HARNESS_BASELINE=DIR names the
# previous night's matrix dir (the pipelines restore last night's artifact there); without one
# there is nothing to compare and the run says so. A regression against it fails the job.
# Output under $HARNESS_NIGHTLY_OUT (default nightly-out/): junit.xml, matrix/ (report.html,
# kcidb.json, summary.txt, compare.{txt,json,html}, one run dir per kernel), lava/ (a LAVA job
# with its artefacts, for a lab).
out=${HARNESS_NIGHTLY_OUT:-nightly-out}
rm -rf "$out/matrix" "$out/matrix-no-modules" "$out/lava" && mkdir -p "$out"  # --out refuses an earlier run
matrix=(run --kernel debian:lines -j "${HARNESS_JOBS:-2}"
        --out "$out/matrix" --junit "$out/junit.xml")
if [ -n "${HARNESS_BASELINE:-}" ] && [ -f "$HARNESS_BASELINE/results.jsonl" ]; then
    matrix+=(--baseline "$HARNESS_BASELINE")
else
    echo "nightly: no previous night's matrix (HARNESS_BASELINE=${HARNESS_BASELINE:-unset}): no comparison"
fi
"$PY" -m harness.cli "${matrix[@]}" || failed=1
"$PY" -m harness.cli run --kernel debian:6.19 --kernel debian:7.0 --kernel debian:7.1 -j "${HARNESS_JOBS:-2}" \
    --out "$out/matrix-no-modules" || echo "nightly: lines without modules: unexpected verdicts, as they must be (see $out/matrix-no-modules/summary.txt)"
"$PY" -m harness.cli lava --kernel debian:6.12 --out "$out/lava" || failed=1

# --- harness bisect on a real kernel history: a bare repo made from the Debian 6.12
# source tree plus five commits (one changes io_uring buffer registration, one does not build);
# `harness bisect --src` must name the io_uring commit, skip the broken one, and build
# incrementally after the first build. ~15-20 min for the first build at -j2, a few min per step.
"$PY" -m pytest -m slow -ra -s tests/slow/test_slow_bisect.py || failed=1

# --- harness series on real patches: four `git format-patch` files on the Debian 6.12
# source (clean; does not build; breaks io_uring registration of ext4 buffers, with a new
# warning; fixes it again); the matrix must say so and exit 1. ~15-20 min for the base build
# at -j2, then seconds of build and about a minute of tests per patch.
"$PY" -m pytest -m slow -ra -s tests/slow/test_slow_series.py || failed=1

# --- bisect across Debian suites: the packages from 6.12.118 (bookworm-security) to
# 7.3.4 (trixie-backports) in upstream version order; the first with a VM_PFNMAP perf ring
# buffer is 6.16.3 (Debian has no 6.14/6.15). About 6 steps, a few minutes plus downloads.
"$PY" -m pytest -m slow -ra tests/slow/test_slow_bisect_line.py || failed=1

exit "$failed"
