#!/usr/bin/env bash
# Installs the system packages facegate's build and tests need (idempotent):
#   libclang: the v4l crate generates its V4L2 bindings with bindgen at build time.
#   mosquitto: the MQTT broker tests/mqtt.rs starts on a loopback port (issue 14); openssl
#   makes the certificates of its TLS test.
# Rust itself comes from rustup (https://rustup.rs); everything else comes from crates.io.
#
# Detection: bindgen (clang-sys) loads `libclang.so`, `libclang-N.so` or `libclang.so.N`. Debian's
# images often carry `libclang-cpp.so.N` (the C++ API, pulled in by other tools), which bindgen
# cannot use, so a plain `grep libclang` is wrong (it was: a fresh machine failed the demo build).
#   tools/setup.sh --detect [libclang]   only reports: exit 0 = usable libclang found, 1 = not found.
# FACEGATE_LDCONFIG_OUTPUT=FILE reads FILE instead of `ldconfig -p` (tests/cli.rs).
#
# Mosquitto: Debian installs the broker as /usr/sbin/mosquitto, which is not on a normal user's
# PATH, and mosquitto-clients (mosquitto_sub/_pub, often installed alone) is not a broker: so
# `command -v mosquitto` is wrong both ways. The detection looks for an executable file named
# mosquitto in PATH and in the sbin folders.
#   tools/setup.sh --detect mosquitto    exit 0 = broker found, 1 = not found.
# FACEGATE_MOSQUITTO_DIRS="DIR ..." replaces the folders searched (tests/mqtt.rs).
#
# The VM test (tools/vm-test.sh, issue 15) needs more, and only it: `tools/setup.sh --vm` installs
# (only) those: qemu-system-x86 (qemu-system-x86_64), kmod (depmod/modprobe build the initramfs's
# module tree), cpio, make and gcc, and linux-headers-KV for the kernel the VM boots (KV from
# tools/vm/kernel-version.sh, as vm-test.sh derives it: gpio-sim is built against it). A package
# counts as present only when dpkg says "installed": a removed package whose configuration files
# remain ("config-files") is missing, and so is linux-headers-KV-common without linux-headers-KV.
#   tools/setup.sh --detect vm           prints the missing packages, one a line; exit 0 = none.
# FACEGATE_DPKG_OUTPUT=FILE reads FILE instead of `dpkg-query -W` ("PACKAGE STATUS" lines;
# tests/cli.rs), FACEGATE_VM_KERNEL fixes KV.
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
  # not `grep -q`: it exits at the first match, `ldconfig -p` then dies of SIGPIPE and, with
  # pipefail, a found libclang read as missing (now and then: it depends on the timing)
  ldconfig_listing | awk '{print $1}' | grep -E '^libclang(-[0-9][0-9.]*)?\.so(\.[0-9.]+)?$' >/dev/null
}

have_mosquitto() {
  local dirs d
  dirs="${FACEGATE_MOSQUITTO_DIRS-$(echo "$PATH" | tr ':' ' ') /usr/sbin /usr/local/sbin /sbin}"
  for d in $dirs; do
    if [ -f "$d/mosquitto" ] && [ -x "$d/mosquitto" ]; then
      return 0
    fi
  done
  return 1
}

dpkg_listing() {
  if [ -n "${FACEGATE_DPKG_OUTPUT:-}" ]; then
    cat "$FACEGATE_DPKG_OUTPUT"
  else
    dpkg-query -W -f='${Package} ${db:Status-Status}\n' 2>/dev/null || true
  fi
}

# The VM test's packages that are not installed, one a line (none: nothing printed). Fails (exit
# 1, with a message) when the kernel version cannot be derived: there is no headers package to name.
missing_vm_packages() {
  local kv installed p
  kv=$("$(dirname "$0")/vm/kernel-version.sh") || {
    echo "facegate: cannot tell which kernel the VM test boots (no linux-image-amd64 in the apt index: apt-get update, or set FACEGATE_VM_KERNEL)" >&2
    return 1
  }
  installed=$(dpkg_listing | awk '$2 == "installed" {print $1}')
  for p in qemu-system-x86 kmod cpio make gcc "linux-headers-$kv"; do
    grep -qxF "$p" <<<"$installed" || echo "$p"
  done
}

if [ "${1:-}" = "--detect" ]; then
  case "${2:-libclang}" in
    libclang) have_libclang; exit $? ;;
    mosquitto) have_mosquitto; exit $? ;;
    vm) missing=$(missing_vm_packages) || exit 2; [ -z "$missing" ] || { echo "$missing"; exit 1; }; exit 0 ;;
    *) echo "usage: tools/setup.sh [--vm | --detect [libclang|mosquitto|vm]]" >&2; exit 2 ;;
  esac
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
packages=()
if [ "${1:-}" = "--vm" ]; then
  # a fresh machine may have no apt index yet: the kernel version comes from it
  missing=$(missing_vm_packages 2>/dev/null) || { $SUDO apt-get update -q; missing=$(missing_vm_packages) || exit 1; }
  if [ -n "$missing" ]; then
    mapfile -t packages <<<"$missing"
    echo "facegate: installing ${packages[*]} (the VM test, tools/vm-test.sh)" >&2
  fi
else
  if ! have_libclang; then
    echo "facegate: installing libclang-dev (needed by the v4l crate's bindgen)" >&2
    packages+=(libclang-dev clang)
  fi
  if ! have_mosquitto; then
    echo "facegate: installing mosquitto (the MQTT broker the tests start, tests/mqtt.rs)" >&2
    packages+=(mosquitto)
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    echo "facegate: installing openssl (tests/mqtt.rs makes the TLS test's certificates with it)" >&2
    packages+=(openssl)
  fi
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
