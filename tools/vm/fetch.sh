#!/usr/bin/env bash
# tools/vm/fetch.sh CACHE KV: the Debian packages the VM test boots from, downloaded once into
# CACHE/debs (apt-get download: no install, no root needed for the download itself) and unpacked
# with dpkg-deb -x into CACHE/kpkg (kernel + modules), CACHE/busybox and CACHE/v4l (v4l2-ctl from
# v4l-utils with the libraries it needs beyond libc/libstdc++: it writes the demo clip into vivid's
# video output). Later runs need no network.
set -euo pipefail
cache=$1 kv=$2
mkdir -p "$cache/debs"
cd "$cache/debs"
need=()
ls linux-image-"$kv"_*.deb >/dev/null 2>&1 || need+=("linux-image-$kv")
ls busybox-static_*.deb >/dev/null 2>&1 || need+=(busybox-static)
v4l=(v4l-utils libv4l-0 libv4lconvert0 libjpeg62-turbo)
for p in "${v4l[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "vm: downloading ${need[*]} into $cache/debs"
  # apt's _apt user cannot write here: the warning about an unsandboxed download is expected
  apt-get download -q "${need[@]}" 2>&1 | grep -v 'unsandboxed' || true
  for p in "${need[@]}"; do
    ls "${p}"_*.deb >/dev/null 2>&1 || { echo "vm: cannot download $p (apt-get download $p; is the apt index current? apt-get update)" >&2; exit 1; }
  done
fi
if [ ! -e "$cache/kpkg/boot/vmlinuz-$kv" ]; then
  rm -rf "$cache/kpkg" && mkdir -p "$cache/kpkg"
  dpkg-deb -x linux-image-"$kv"_*.deb "$cache/kpkg"
  # modules.dep is made by the package's postinst, not shipped: make it for the unpacked tree
  depmod -b "$cache/kpkg" "$kv"
fi
if [ ! -x "$cache/busybox/bin/busybox" ]; then
  rm -rf "$cache/busybox" && mkdir -p "$cache/busybox"
  dpkg-deb -x busybox-static_*.deb "$cache/busybox"
fi
if [ ! -x "$cache/v4l/usr/bin/v4l2-ctl" ]; then
  rm -rf "$cache/v4l" && mkdir -p "$cache/v4l"
  for p in "${v4l[@]}"; do
    dpkg-deb -x "$(ls "${p}"_*.deb | head -1)" "$cache/v4l"
  done
fi
