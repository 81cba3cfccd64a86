#!/usr/bin/env bash
# tools/vm/mkinitrd.sh CACHE KV FACEGATE_BIN OUT_DIR: a busybox initramfs with
#   - the kernel modules the checks load (vivid, configfs and their dependencies, resolved from the
#     kernel package's modules.dep) and gpio-sim-oot.ko when CACHE/gpio-sim has it, with a
#     modules.dep of their own so that busybox modprobe / modprobe -r work inside;
#   - the facegate binary (stripped) and the glibc libraries it links, the models, the checks
#     (tools/vm/init.sh as /init) and their configs (tools/vm/conf/*.toml);
#   - for the "face" check: v4l2-ctl and its libraries, the demo's enrolment photo and the clip
#     frames OUT_DIR/clip/*.yuv.
# Writes OUT_DIR/initrd.gz.
set -euo pipefail
cache=$1 kv=$2 bin=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root="$out/root"
rm -rf "$root" && mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,config,lib64,etc,facegate} "$root/lib/modules/$kv"
cp "$cache/busybox/bin/busybox" "$root/bin/"
kp="$cache/kpkg"
# every module with its dependencies (kmod's modprobe prints them in load order)
for m in vivid configfs; do
  modprobe -d "$kp" -S "$kv" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
  rel=${ko#"$kp"/}
  mkdir -p "$root/$(dirname "$rel")" && cp "$ko" "$root/$rel"
done
if [ -e "$cache/gpio-sim/gpio-sim-oot.ko" ]; then
  mkdir -p "$root/lib/modules/$kv/extra" && cp "$cache/gpio-sim/gpio-sim-oot.ko" "$root/lib/modules/$kv/extra/"
fi
cp "$kp/lib/modules/$kv"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kv/"
depmod -b "$root" "$kv"
echo "$kv" > "$root/etc/kernel-version"
# facegate and its shared libraries (same paths as on the host: the same Debian release)
cp "$bin" "$root/bin/facegate" && strip "$root/bin/facegate"
for lib in $(ldd "$bin" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
done
# the models the VM configs use (not the fp32 encoder nor the full-range detector)
mkdir -p "$root/facegate/models"
for f in models.toml shape_predictor_5_face_landmarks.dat dlib_face_resnet_v1.int8w.onnx \
  dlib_face_resnet_v1.int8qdq.onnx face_detection_short_range.onnx minifasnet_v2.onnx; do
  cp "$repo/models/$f" "$root/facegate/models/"
done
cp "$here"/conf/*.toml "$root/facegate/"
# the "face" check: v4l2-ctl (from CACHE/v4l, fetch.sh) and its libraries, the enrolled person's
# photo and the clip frames as 720x480 YUYV (vm-test.sh converts them into OUT_DIR/clip)
cp "$cache/v4l/usr/bin/v4l2-ctl" "$root/bin/" && mkdir -p "$root/lib/x86_64-linux-gnu"
for lib in $(LD_LIBRARY_PATH="$cache/v4l/usr/lib/x86_64-linux-gnu" ldd "$cache/v4l/usr/bin/v4l2-ctl" \
  | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
  cp -L "$lib" "$root/lib/x86_64-linux-gnu/"
done
cp "$repo/tests/fixtures/faces/lin-manuel-miranda.png" "$root/facegate/"
mkdir -p "$root/facegate/clip" && cp "$out"/clip/*.yuv "$root/facegate/clip/"
cp "$here/init.sh" "$root/init" && chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.gz"
echo "vm: initramfs $(du -h "$out/initrd.gz" | cut -f1) ($out/initrd.gz)"
