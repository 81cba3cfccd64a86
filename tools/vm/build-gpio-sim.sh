#!/usr/bin/env bash
# tools/vm/build-gpio-sim.sh CACHE KV: builds the kernel's gpio-sim driver as an out-of-tree module
# for Debian's kernel KV into CACHE/gpio-sim/gpio-sim-oot.ko. Debian enables neither
# CONFIG_GPIO_SIM nor CONFIG_IRQ_SIM (which it needs), so both sources come from Debian's
# linux-source-X.Y package (GPL-2.0) and are linked into one module. One change to irq_sim.c:
# irq_to_desc() is not exported to modules in 6.1, so handle_simple_irq(irq_to_desc(n)) becomes
# generic_handle_irq(n) (the same handler for these simple interrupts).
# Needs the package linux-headers-KV installed (/lib/modules/KV/build) and gcc.
set -euo pipefail
cache=$1 kv=$2
out="$cache/gpio-sim"
[ -e "$out/gpio-sim-oot.ko" ] && exit 0
build="/lib/modules/$kv/build"
[ -d "$build" ] || { echo "vm: cannot run: $build missing: apt-get install linux-headers-$kv" >&2; exit 3; }
series=$(echo "$kv" | cut -d. -f1-2)   # 6.1.0-57-amd64 -> 6.1
mkdir -p "$cache/debs" && cd "$cache/debs"
if ! ls linux-source-"$series"_*.deb >/dev/null 2>&1; then
  echo "vm: downloading linux-source-$series into $cache/debs"
  apt-get download -q "linux-source-$series" 2>&1 | grep -v 'unsandboxed' || true
fi
src=$(ls linux-source-"$series"_*.deb | head -1)
# the kernel package's version must be the source's (Debian: linux-image-KV and linux-source-X.Y
# come from the same source upload)
img_ver=$(dpkg-deb -f linux-image-"$kv"_*.deb Version)
src_ver=$(dpkg-deb -f "$src" Version)
[ "$img_ver" = "$src_ver" ] || { echo "vm: linux-source $src_ver does not match linux-image-$kv $img_ver" >&2; exit 1; }
w=$(mktemp -d) && trap 'rm -rf "$w"' EXIT
dpkg-deb --fsys-tarfile "$src" | tar -x -C "$w" "./usr/src/linux-source-$series.tar.xz"
tar -xJf "$w/usr/src/linux-source-$series.tar.xz" -C "$w" \
  "linux-source-$series/drivers/gpio/gpio-sim.c" "linux-source-$series/drivers/gpio/gpiolib.h" \
  "linux-source-$series/kernel/irq/irq_sim.c"
s="$w/linux-source-$series"
mkdir -p "$w/m" && cp "$s"/drivers/gpio/{gpio-sim.c,gpiolib.h} "$s/kernel/irq/irq_sim.c" "$w/m/"
sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$w/m/irq_sim.c"
grep -q 'generic_handle_irq(irqnum);' "$w/m/irq_sim.c" || { echo "vm: irq_sim.c changed upstream: the patch did not apply" >&2; exit 1; }
printf 'obj-m += gpio-sim-oot.o\ngpio-sim-oot-objs := gpio-sim.o irq_sim.o\n' > "$w/m/Makefile"
make -s -C "$build" M="$w/m" modules
mkdir -p "$out" && cp "$w/m/gpio-sim-oot.ko" "$out/"
echo "vm: built $out/gpio-sim-oot.ko"
