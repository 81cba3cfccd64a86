#!/usr/bin/env bash
# Cross-builds facegate for an ARM target and runs its tests under qemu-user (the runners and the
# emulated Pi core are in .cargo/config.toml). README "ARM boards".
#
#   tools/cross-test.sh [TARGET] [extra cargo test args...]
#     TARGET: aarch64-unknown-linux-gnu (default), armv7-unknown-linux-gnueabihf,
#             aarch64-unknown-linux-musl
#   e.g. tools/cross-test.sh armv7-unknown-linux-gnueabihf -- --nocapture
#
# Runs the unit tests and every integration test but two:
#   - tests/daemon.rs: the door loop on a real-time replay (unlock within K of N frames in a time
#     window, pulse lengths to tens of ms) assumes the pipeline keeps up with the frame rate, which
#     it does not under emulation;
#   - tests/camera.rs: wall-clock assertions on real-time replay (tens of ms) that emulation breaks.
# tests/cli.rs starts the ARM facegate binary: through binfmt_misc where the kernel has it, else
# through the same qemu runner (tests/common.rs, facegate_command).
# FACEGATE_CROSS_TESTS="--test pipeline" overrides the selection.
# Set CARGO_TARGET_DIR to keep these builds apart from native ones (default: target/cross).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-aarch64-unknown-linux-gnu}
[ $# -gt 0 ] && shift
tools/setup-cross.sh "$target"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cross}
# shellcheck disable=SC2206
tests=(${FACEGATE_CROSS_TESTS:---lib --test pipeline --test reference --test arm_agreement --test models_check --test door --test audit --test cli})
exec cargo test --locked --target "$target" "${tests[@]}" "$@"
