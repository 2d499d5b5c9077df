#!/bin/sh
# check-exports.sh BUILDDIR -- the installed libraries hold only the library:
#   1. libkdloss.so exports exactly the functions include/kdloss.h declares
#      with KD_API (the list is read from the header, not kept here);
#   2. libkdloss.a defines no global symbol of the tests or benchmarks (the
#      double reference, the floors, the design sketches, the tester's tk_*),
#      and none outside the kd_ namespace, which could clash with a caller's.
# Either library may be absent (default_library=static or shared): its check
# is then skipped with a note. NM selects the nm (aarch64-linux-gnu-nm for a
# cross build). Exit status 1 on any violation, 2 on a usage problem.
set -eu

build=${1:-}
if [ -z "$build" ] || [ ! -d "$build/src" ]; then
  echo "usage: $0 BUILDDIR (a configured and built meson build directory)" >&2
  exit 2
fi
NM=${NM:-nm}
here=$(dirname "$0")
header="$here/../include/kdloss.h"
status=0

# Declarations may span lines: join the header (without the preprocessor
# lines that define KD_API), then take the identifier just
# before the "(" of each KD_API declaration.
api=$(grep -v "^[[:space:]]*#" "$header" | tr "\n" " " | grep -o 'KD_API[^;(]*(' |
      sed 's/.*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*($/\1/' | sort -u)
if [ -z "$api" ]; then
  echo "no KD_API declarations found in $header" >&2
  exit 2
fi

so=$(find "$build/src" -maxdepth 1 -name 'libkdloss.so*' -type f | sort | head -n 1)
if [ -n "$so" ]; then
  exported=$("$NM" -D --defined-only "$so" | awk 'NF == 3 && $2 ~ /[A-Z]/ { print $3 }' | sort -u)
  extra=$(printf '%s\n' "$exported" | grep -vxF "$api" || true)
  missing=$(printf '%s\n' "$api" | grep -vxF "$exported" || true)
  if [ -n "$extra" ] || [ -n "$missing" ]; then
    [ -z "$extra" ] || echo "FAIL $so exports symbols outside the public API:" $extra
    [ -z "$missing" ] || echo "FAIL $so lacks public functions:" $missing
    status=1
  else
    echo "ok   $so: exports exactly the $(printf '%s\n' "$api" | wc -l) KD_API functions"
  fi
else
  echo "note: no libkdloss.so under $build/src (static-only build): shared check skipped"
fi

a="$build/src/libkdloss.a"
if [ -f "$a" ]; then
  globals=$("$NM" -g --defined-only "$a" | awk 'NF == 3 { print $3 }' | sort -u)
  test_syms=$(printf '%s\n' "$globals" |
              grep -E '^(kd_reference|kd_floor|kd_design|kd_bench|tk_)' || true)
  foreign=$(printf '%s\n' "$globals" | grep -v '^kd_' || true)
  if [ -n "$test_syms" ] || [ -n "$foreign" ]; then
    [ -z "$test_syms" ] || echo "FAIL $a holds test or benchmark symbols:" $test_syms
    [ -z "$foreign" ] || echo "FAIL $a defines globals outside kd_:" $foreign
    status=1
  else
    echo "ok   $a: $(printf '%s\n' "$globals" | wc -l) globals, all kd_, none of tests or benchmarks"
  fi
else
  echo "note: no libkdloss.a under $build/src (shared-only build): static check skipped"
fi

[ "$status" -eq 0 ] && echo "PASS: the libraries export only the library" || echo "FAILED"
exit "$status"
