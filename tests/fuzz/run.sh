#!/usr/bin/env bash
# Runs the libFuzzer harness for SECONDS on each ISA group (default 20), each
# with the ISA pinned (KDLOSS_FUZZ_ISA), starting from the seed corpus in the
# tree; the corpora grow in BUILD/fuzz-corpus/<isa>, never in the tree. Fails
# on any finding; a finding's input is left in BUILD/fuzz-artifacts/ and
# replays with `BUILD/tests/fuzz/fuzz_kdloss <file>`.
#   tests/fuzz/run.sh BUILD [SECONDS] [ISA...]   (ISAs: default every one the CPU has)
# BUILD is a fuzz build: CC=clang meson setup BUILD -Dfuzz=true
#   -Db_sanitize=address,undefined -Db_lundef=false -Dbenchmarks=false
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: tests/fuzz/run.sh BUILD [SECONDS] [ISA...]}
seconds=${2:-20}
shift $(( $# < 2 ? $# : 2 ))
isas=("$@")
[ ${#isas[@]} -gt 0 ] || isas=(scalar avx2 avx512 neon)
fuzzer=$build/tests/fuzz/fuzz_kdloss
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$build/fuzz-artifacts"
for isa in "${isas[@]}"; do
  # The harness refuses an ISA the CPU or build lacks.
  probe=$(KDLOSS_FUZZ_ISA=$isa "$fuzzer" -runs=0 -artifact_prefix="$build/fuzz-artifacts/probe-" \
    tests/fuzz/corpus 2>&1 || true)
  if grep -q 'not supported here' <<< "$probe"; then
    echo "== $isa: not supported here, skipped"
    continue
  fi
  mkdir -p "$build/fuzz-corpus/$isa"
  echo "== $isa: ${seconds}s"
  KDLOSS_FUZZ_ISA=$isa "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$isa-" \
    "$build/fuzz-corpus/$isa" tests/fuzz/corpus > "$build/fuzz-$isa.log" 2>&1 || {
    tail -40 "$build/fuzz-$isa.log"
    echo "== $isa: FINDING (input in $build/fuzz-artifacts/)"
    exit 1
  }
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units' "$build/fuzz-$isa.log" | tr '\n' ' '
  echo "corpus $(ls "$build/fuzz-corpus/$isa" | wc -l) files"
done
