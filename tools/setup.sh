#!/usr/bin/env bash
# Installs the system packages facegate's build needs (idempotent):
#   libclang: the v4l crate generates its V4L2 bindings with bindgen at build time.
# Rust itself comes from rustup (https://rustup.rs); everything else comes from crates.io.
#
# Detection: bindgen (clang-sys) loads `libclang.so`, `libclang-N.so` or `libclang.so.N`. Debian's
# images often carry `libclang-cpp.so.N` (the C++ API, pulled in by other tools), which bindgen
# cannot use, so a plain `grep libclang` is wrong (it was: a fresh machine failed the demo build).
#   tools/setup.sh --detect   only reports: exit 0 = usable libclang found, 1 = not found.
# FACEGATE_LDCONFIG_OUTPUT=FILE reads FILE instead of `ldconfig -p` (tests/setup_detect.rs).
set -euo pipefail

ldconfig_listing() {
  if [ -n "${FACEGATE_LDCONFIG_OUTPUT:-}" ]; then
    cat "$FACEGATE_LDCONFIG_OUTPUT"
  else
    ldconfig -p 2>/dev/null || true
  fi
}

# A library name bindgen can load: libclang.so, libclang.so.1, libclang-14.so, libclang-14.so.1,
# libclang-14.0.6.so; never libclang-cpp.so.14.
have_libclang() {
  ldconfig_listing | awk '{print $1}' | grep -Eq '^libclang(-[0-9][0-9.]*)?\.so(\.[0-9.]+)?$'
}

if [ "${1:-}" = "--detect" ]; then
  have_libclang
  exit $?
fi

if have_libclang; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "facegate: installing libclang-dev (needed by the v4l crate's bindgen)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends libclang-dev clang
