#!/usr/bin/env bash
# tools/vm/run.sh KERNEL INITRD LOG [TIMEOUT_S]: boots the initramfs under qemu-system-x86_64 with
# the serial console on stdout (tee'd to LOG), no network, no disk. Software emulation (TCG) by
# default; FACEGATE_VM_ACCEL=kvm uses KVM. Not automatic: on the development machine (itself a VM)
# /dev/kvm opens but the guest hangs after "Probing EDD" with -cpu host,-arch-capabilities or
# qemu64, and plain -cpu host aborts (failed to set MSR 0x10a). The guest powers off after its
# checks; TIMEOUT_S (default 600) bounds a hung guest. Exit status: qemu's, 124 on timeout.
set -uo pipefail
kernel=$1 initrd=$2 log=$3 limit=${4:-600}
accel=(-accel tcg -cpu max)
if [ "${FACEGATE_VM_ACCEL:-tcg}" = kvm ]; then
  accel=(-accel kvm -cpu host)
fi
echo "vm: booting with ${accel[*]} (at most ${limit} s)"
nice -n 10 timeout --kill-after=10 "$limit" qemu-system-x86_64 "${accel[@]}" -m 1536 -smp 1 \
  -nographic -no-reboot -monitor none -serial stdio -nic none \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 rdinit=/init panic=-1 loglevel=${FACEGATE_VM_LOGLEVEL:-4}${FACEGATE_VM_CHECKS:+ vmchecks=$FACEGATE_VM_CHECKS}" </dev/null | tee "$log"
exit "${PIPESTATUS[0]}"
