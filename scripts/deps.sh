#!/usr/bin/env bash
# Installs what building herald needs and is not there yet: libclang for
# rocksdb's bindgen (Debian's libclang-dev). Safe to run again.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "herald needs a Rust toolchain (cargo); install it from https://rustup.rs" >&2
  exit 1
fi

have_libclang() {
  ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && return 0
  # libclang-cpp.so is a different library; bindgen needs libclang.so itself.
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1
}

if ! have_libclang; then
  echo "installing libclang-dev (needed to build rocksdb)" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
fi
