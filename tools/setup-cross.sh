#!/usr/bin/env bash
# Installs (idempotently) what cross-building and testing facegate for ARM boards needs on a
# Debian/Ubuntu x86_64 machine, without Docker (README "ARM boards"; .cargo/config.toml uses them):
#   - Debian cross gcc + target libc (linkers, and the kernel UAPI headers v4l's bindgen reads),
#   - qemu-user-static (the test runner: qemu-aarch64-static / qemu-arm-static, explicit -cpu),
#   - libclang (bindgen), and the rustup std for each target.
# Usage: tools/setup-cross.sh [TARGET...]   (default: all three targets)
# Exit status 3: the Rust standard library for a target could not be installed (rustup needs to
# download it; a machine without that access cannot cross-build). .ci/run reports that as a skip.
set -euo pipefail

PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
      qemu-user-static libclang-dev clang)
TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-linux-musl)
[ $# -gt 0 ] && TARGETS=("$@")

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "facegate: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

installed=$(rustup target list --installed)
for t in "${TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" && continue
  if ! timeout 600 rustup target add "$t"; then
    echo "facegate: cannot install the Rust standard library for $t (\`rustup target add $t\`" \
         "failed: it downloads from the Rust distribution server). Run it where that is reachable." >&2
    exit 3
  fi
done

# The runners in .cargo/config.toml call these by name (binfmt_misc is not required).
command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null
command -v aarch64-linux-gnu-gcc >/dev/null && command -v arm-linux-gnueabihf-gcc >/dev/null
