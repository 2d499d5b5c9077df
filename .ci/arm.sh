#!/usr/bin/env bash
# aarch64 CI: cross-compiles kdloss with warnings as errors and runs the whole
# test suite under qemu-aarch64 on every ISA the (emulated) CPU has -- NEON and
# scalar -- then, with KDLOSS_ISA=scalar making scalar the start-up choice, the
# suites that call through the dispatched public API (api, public, threads).
# The per-ISA suites already ran scalar in the first pass. Fails on any build
# error or test failure.
#
# Needs what `scripts/install-deps.sh --arm` installs. Run from anywhere; builds
# in $KD_ARM_BUILD (default build-arm under the repository root), from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${KD_ARM_BUILD:-build-arm}

start=$(date +%s)
rm -rf "${build:?}"
meson setup "$build" --cross-file cross/aarch64-linux-gnu.txt -Dwerror=true
ninja -C "$build"

echo "== aarch64 tests under qemu: every supported ISA (neon, scalar)"
meson test -C "$build" --print-errorlogs
echo "== aarch64 tests under qemu: KDLOSS_ISA=scalar, the dispatched API"
KDLOSS_ISA=scalar meson test -C "$build" --print-errorlogs --logbase testlog-scalar \
  api public threads

echo "== aarch64 libraries: only the public API exported"
NM=aarch64-linux-gnu-nm scripts/check-exports.sh "$build"

grep -h '^\[ worst' "$build"/meson-logs/testlog.txt "$build"/meson-logs/testlog-scalar.txt || true
echo "== aarch64 CI passed in $(( $(date +%s) - start )) s"
