#!/usr/bin/env bash
# Builds what goes onto a door: the release binary for a board, a Debian package (glibc targets)
# and a tarball (every target; the one to use with the static musl binary).
#
#   tools/package.sh [TARGET]      default aarch64-unknown-linux-gnu; also
#                                  armv7-unknown-linux-gnueabihf, aarch64-unknown-linux-musl
#
# Output in target/dist/: facegate_<version>-1_<arch>.deb, facegate-<version>-<TARGET>.tar.gz.
# The release profile (Cargo.toml: fat LTO, one codegen unit, stripped, panics unwind) takes
# ~15-25 min per target on 2 cores from clean. Needs tools/setup-cross.sh's toolchains, and
# cargo-deb for the .deb (installed here with `cargo install --locked cargo-deb` if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-aarch64-unknown-linux-gnu}
tools/setup-cross.sh "$target"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
version=$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="facegate"))')
dist="$CARGO_TARGET_DIR/dist"
mkdir -p "$dist"

cargo build --locked --release --target "$target" --bin facegate
bin="$CARGO_TARGET_DIR/$target/release/facegate"
echo "facegate: $bin: $(stat -c %s "$bin") bytes (stripped)"

# Tarball: the same layout the Debian package installs, for a manual install (README).
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/facegate-$version-$target"
mkdir -p "$root/models/LICENSES" "$root/config" "$root/deploy"
install -m 0755 "$bin" "$root/facegate"
cp models/*.onnx models/*.dat models/models.toml models/MODEL_CARD.md "$root/models/"
cp models/LICENSES/* "$root/models/LICENSES/"
cp config/facegate.toml "$root/config/"
cp deploy/facegate.service deploy/99-facegate-gpio.rules deploy/99-facegate-usb.rules "$root/deploy/"
cp README.md "$root/"
tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$dist/facegate-$version-$target.tar.gz" \
  "facegate-$version-$target"
echo "facegate: $dist/facegate-$version-$target.tar.gz"

case "$target" in
  *-linux-gnu | *-linux-gnueabihf)
    command -v cargo-deb >/dev/null || cargo install --locked cargo-deb --no-default-features
    cargo deb --no-build --no-strip --target "$target" --output "$dist/"
    ;;
  *) echo "facegate: no .deb for $target (static binary: use the tarball)" ;;
esac
