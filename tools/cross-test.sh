#!/usr/bin/env bash
# Cross-builds facegate for an ARM target and runs its tests under qemu-user (the runners and the
# emulated Pi core are in .cargo/config.toml). README "ARM boards".
#
#   tools/cross-test.sh [TARGET] [extra cargo test args...]
#     TARGET: aarch64-unknown-linux-gnu (default), armv7-unknown-linux-gnueabihf,
#             aarch64-unknown-linux-musl
#   e.g. tools/cross-test.sh armv7-unknown-linux-gnueabihf -- --nocapture
#
# Runs the unit tests and every integration test that stays inside its own process. Not run:
#   - tests/cli.rs, tests/daemon.rs: they spawn the facegate binary, an ARM executable that the
#     kernel can only start through binfmt_misc (not available in CI containers);
#   - tests/camera.rs: wall-clock assertions on real-time replay (tens of ms) that emulation breaks.
# FACEGATE_CROSS_TESTS="--test pipeline" overrides the selection.
# Set CARGO_TARGET_DIR to keep these builds apart from native ones (default: target/cross).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-aarch64-unknown-linux-gnu}
[ $# -gt 0 ] && shift
tools/setup-cross.sh "$target"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cross}
# shellcheck disable=SC2206
tests=(${FACEGATE_CROSS_TESTS:---lib --test pipeline --test reference --test arm_agreement --test models_check --test door --test audit})
exec cargo test --locked --target "$target" "${tests[@]}" "$@"
