#!/bin/sh
# check-isa-objects.sh BUILDDIR -- the x86-64 library stays baseline outside
# src/avx2/ and src/avx512/: no object of the shared code (the core library's
# own objects and src/scalar/) may use a ymm or zmm register, and in the
# linked libkdloss.so every function that does must come from an ISA object.
# Then check-exports.sh (the nm check): the libraries export only the public
# API and hold no test or benchmark symbol.
# Exit status 1 on any violation, 2 on a usage or build-tree problem.
set -eu

build=${1:-}
if [ -z "$build" ] || [ ! -d "$build/src" ]; then
  echo "usage: $0 BUILDDIR (a configured and built meson build directory)" >&2
  exit 2
fi
OBJDUMP=${OBJDUMP:-objdump}
NM=${NM:-nm}
status=0

# 1. Shared objects: not one ymm/zmm operand, nor a VEX/EVEX-encoded (v...)
# instruction on xmm, which would also need AVX.
pattern='%[yz]mm[0-9]|^ *[0-9a-f]+:[[:space:]]+v[a-z0-9]+[[:space:]].*%xmm[0-9]'
objs=$(find "$build/src/libkdloss_core.a.p" "$build/src/scalar" -name '*.o' 2>/dev/null | sort)
if [ -z "$objs" ]; then
  echo "no objects under $build/src/libkdloss_core.a.p or $build/src/scalar: build first" >&2
  exit 2
fi
for o in $objs; do
  hits=$("$OBJDUMP" -d --no-show-raw-insn "$o" | grep -cE "$pattern" || true)
  if [ "$hits" -ne 0 ]; then
    echo "FAIL $o: $hits instructions use ymm/zmm or AVX encodings:"
    "$OBJDUMP" -d --no-show-raw-insn "$o" | grep -E "$pattern" | head -5
    status=1
  else
    echo "ok   $o: no ymm/zmm, no AVX encodings"
  fi
done

# 2. The linked library: each function using ymm/zmm is defined by an ISA object.
so=$(find "$build/src" -maxdepth 1 -name 'libkdloss.so*' -type f | sort | head -n 1)
if [ -n "$so" ]; then
  isa_syms=$(find "$build/src" \( -name '*_avx2.c.o' -o -name '*_avx512.c.o' \) 2>/dev/null |
             xargs -r "$NM" --defined-only | awk 'NF == 3 && $2 ~ /[tT]/ { print $3 }' | sort -u)
  users=$("$OBJDUMP" -d --no-show-raw-insn "$so" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = substr($2, 2, length($2) - 3); next }
    /%[yz]mm[0-9]/ && fn != "" { print fn }' | sort -u)
  n=0
  for fn in $users; do
    n=$((n + 1))
    if ! printf '%s\n' "$isa_syms" | grep -qxF "$fn"; then
      echo "FAIL $so: $fn uses ymm/zmm but is not defined in src/avx2 or src/avx512"
      status=1
    fi
  done
  echo "ok   $so: $n functions use ymm/zmm, all from ISA objects" |
    { [ "$status" -eq 0 ] && cat || true; }
else
  echo "note: no libkdloss.so under $build/src (static-only build): step 2 skipped"
fi

[ "$status" -eq 0 ] && echo "PASS: shared code is baseline x86-64" || echo "FAILED"

# 3. Exported symbols (nm).
NM="$NM" "$(dirname "$0")/check-exports.sh" "$build" || status=$?
exit "$status"
