#!/usr/bin/env bash
# Installs the system packages facegate's build needs (idempotent):
#   libclang: the v4l crate generates its V4L2 bindings with bindgen at build time.
# Rust itself comes from rustup (https://rustup.rs); everything else comes from crates.io.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libclang'; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "facegate: installing libclang-dev (needed by the v4l crate's bindgen)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends libclang-dev clang
