#!/usr/bin/env bash
# tools/vm/kernel-version.sh [CACHE]: prints the Debian kernel version the VM test boots (e.g.
# 6.1.0-57-amd64): $FACEGATE_VM_KERNEL if set, else the version the linux-image-amd64 metapackage
# depends on (the apt index), else the one already unpacked in CACHE/kpkg. Exit 1 if none.
# tools/vm-test.sh boots it; tools/setup.sh --vm installs the matching linux-headers package.
set -euo pipefail
kv=${FACEGATE_VM_KERNEL:-}
if [ -z "$kv" ]; then
  kv=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-//p' | head -1)
fi
if [ -z "$kv" ] && [ -n "${1:-}" ]; then
  kv=$(ls "$1/kpkg/boot" 2>/dev/null | sed -n 's/^vmlinuz-//p' | head -1)
fi
[ -n "$kv" ] || exit 1
echo "$kv"
