#!/usr/bin/env bash
# Installs what kdloss needs on Debian 12 (run as root, or with sudo available).
#   scripts/install-deps.sh          native build, tests (C and Python), benchmarks, PyTorch, fuzzer (clang)
#   scripts/install-deps.sh --arm    also the aarch64 cross toolchain, qemu and arm64 libraries
# --torch is accepted for compatibility and changes nothing (PyTorch is in the default set).
set -euo pipefail
arm=0
for a in "$@"; do
  case "$a" in
    --arm) arm=1 ;;
    --torch) ;;
    *) echo "usage: $0 [--arm] [--torch]" >&2; exit 2 ;;
  esac
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
pkgs=(meson ninja-build pkgconf gcc g++ clang libclang-rt-14-dev libsleef-dev libcmocka-dev libbenchmark-dev)
# python/kdloss, its tests and the PyTorch comparisons (for /usr/bin/python3)
pkgs+=(python3-torch python3-numpy python3-pytest python3-sklearn python3-mpmath)
if [ "$arm" -eq 1 ]; then
  $SUDO dpkg --add-architecture arm64
  pkgs+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user
         libsleef-dev:arm64 libcmocka-dev:arm64 libbenchmark-dev:arm64 pkgconf:arm64)
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
