#!/usr/bin/env bash
# Installs what the benchmarks compare against and is not there yet: h2load
# (Debian's nghttp2-client), the baseline of the APNs push benchmark. Safe
# to run again.
set -euo pipefail

if ! command -v h2load >/dev/null 2>&1; then
  echo "installing nghttp2-client (h2load, the push benchmark's baseline)" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nghttp2-client >/dev/null
fi
