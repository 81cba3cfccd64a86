#!/usr/bin/env bash
# tools/vm-test.sh: facegate against real kernel drivers in a VM (issue 15). Boots Debian's stock
# kernel under qemu-system-x86_64 with a busybox initramfs that holds a debug facegate binary of
# this tree, loads vivid (a V4L2 camera) and an out-of-tree gpio-sim (GPIO character device), and
# runs the checks of tools/vm/init.sh inside. Prints one line per check. See tools/vm/README.md.
# Exit: 0 all checks passed; 1 a check failed, did not report, or the VM timed out; 3 the test
# cannot run on this machine (a host tool missing, the Debian packages cannot be downloaded, no
# kernel headers): CI reports that as SKIPPED, loudly; anything else is a failure.
#
# Environment: FACEGATE_VM_KERNEL=6.1.0-57-amd64 (default: the one linux-image-amd64 depends on, or
# the one already cached), FACEGATE_VM_ACCEL=kvm (default tcg: software emulation),
# FACEGATE_VM_TIMEOUT=600 (seconds for the boot and the checks), CARGO_TARGET_DIR.
# Host packages: qemu-system-x86, kmod, cpio, make, gcc, linux-headers-$KV: `tools/setup.sh --vm`
# (run first) installs the missing ones.
# Network: only on the first run (apt-get download into $CARGO_TARGET_DIR/vm-cache/debs).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
cache="$target/vm-cache"
mkdir -p "$cache"
start=$(date +%s)
step() { echo "== vm: $1 (at $(( $(date +%s) - start )) s)"; }

# depmod/modprobe live in /usr/sbin, not on a normal user's PATH
export PATH="$PATH:/usr/sbin:/sbin"
step "host packages (tools/setup.sh --vm)"
tools/setup.sh --vm || { echo "vm: cannot run: the host packages cannot be installed (tools/setup.sh --vm failed)" >&2; exit 3; }
for tool in qemu-system-x86_64 cpio depmod modprobe make gcc; do
  command -v "$tool" >/dev/null || { echo "vm: cannot run: $tool missing (tools/setup.sh --vm)" >&2; exit 3; }
done
kv=$(tools/vm/kernel-version.sh "$cache") || { echo "vm: cannot run: no kernel version: set FACEGATE_VM_KERNEL (e.g. 6.1.0-57-amd64)" >&2; exit 3; }

step "Debian packages for kernel $kv"
tools/vm/fetch.sh "$cache" "$kv" || { echo "vm: cannot run: the Debian packages for $kv cannot be fetched" >&2; exit 3; }

step "gpio-sim module"
nice -n 10 tools/vm/build-gpio-sim.sh "$cache" "$kv"   # exit 3: no headers (cannot run here)

step "facegate (debug build)"
nice -n 10 cargo build --locked --bin facegate --example vm_frames
bin="$target/debug/facegate"

step "initramfs"
run="$cache/run"
mkdir -p "$run"
# the "face" check's frames: the demo clip's pianist (003-009: a stranger) and Lin-Manuel Miranda
# facing the camera (024-030), centred on 720x480 (vivid's S-Video/NTSC size), YUYV
rm -rf "$run/clip"
clip=tests/fixtures/clip/hamilton
"$target/debug/examples/vm_frames" 720 480 "$run/clip" $(seq -f "$clip/%03g.jpg" 3 9) $(seq -f "$clip/%03g.jpg" 24 30)
nice -n 10 tools/vm/mkinitrd.sh "$cache" "$kv" "$bin" "$run"

step "boot"
log="$run/console.log"
set +e
tools/vm/run.sh "$cache/kpkg/boot/vmlinuz-$kv" "$run/initrd.gz" "$log" "${FACEGATE_VM_TIMEOUT:-600}"
qrc=$?
set -e

step "results"
grep -a '^VMCHECK \(PASS\|FAIL\|INFO\)' "$log" | tr -d '\r' || true
if ! grep -aq '^VMCHECK DONE failures=0' "$log"; then
  if [ "$qrc" = 124 ]; then
    echo "vm: FAIL: the VM did not finish within ${FACEGATE_VM_TIMEOUT:-600} s (console: $log)"
  else
    echo "vm: FAIL: a check failed or did not report (qemu exit $qrc; console: $log)"
  fi
  exit 1
fi
echo "vm: all checks passed in $(( $(date +%s) - start )) s"
