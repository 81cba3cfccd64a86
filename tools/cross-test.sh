#!/usr/bin/env bash
# Cross-builds facegate for an ARM target and runs its tests under qemu-user (the runners and the
# emulated Pi core are in .cargo/config.toml). README "ARM boards".
#
#   tools/cross-test.sh [TARGET] [extra cargo test args...]
#     TARGET: aarch64-unknown-linux-gnu (default), armv7-unknown-linux-gnueabihf,
#             aarch64-unknown-linux-musl
#   e.g. tools/cross-test.sh armv7-unknown-linux-gnueabihf -- --nocapture
#
# Runs the unit tests (--lib) and the integration tests (the one test crate, tests/main.rs) but
# seven of its modules and one test, left out with libtest filters (--skip daemon:: ...; the unit tests run in a
# cargo invocation of their own because a --skip is a substring match and would also skip the
# unit tests of src/daemon.rs, src/camera/, src/enroll/):
#   - daemon (tests/daemon.rs): the door loop on a real-time replay (unlock within K of N frames in
#     a time window, pulse lengths to tens of ms) assumes the pipeline keeps up with the frame
#     rate, which it does not under emulation;
#   - camera (tests/camera.rs): wall-clock assertions on real-time replay (tens of ms) that
#     emulation breaks;
#   - enroll (tests/enroll.rs) and fuzz (tests/fuzz.rs): timing and peak-RSS bounds sized for
#     native runs, and too slow under emulation;
#   - mqtt (tests/mqtt.rs): the door loop on real-time replays against a mosquitto broker (a host
#     binary), with reconnect and latency windows; the MQTT code is portable Rust with no
#     target-specific parts;
#   - visits (tests/visits.rs) and framing (tests/framing.rs): the clip under two visit rules and
#     photo retries (padding, tiles, quarter turns) are many detector passes, minutes under
#     emulation; the numbers they rest on are the detector's and encoder's, which
#     tests/arm_agreement.rs checks on every target;
#   - and one test of tests/pipeline.rs, jittered_enrolment_brings_the_same_person_nearer_...:
#     ~220 encoder runs comparing two ways of making templates, a model property that the same
#     encoder numbers (arm_agreement) decide.
# tests/cli.rs starts the ARM facegate binary: through binfmt_misc where the kernel has it, else
# through the same qemu runner (tests/common.rs, facegate_command).
# FACEGATE_CROSS_TESTS overrides the selection with one `cargo test` argument list, e.g.
#   FACEGATE_CROSS_TESTS="--test main -- pipeline:: reference::" tools/cross-test.sh
#   FACEGATE_CROSS_TESTS="--lib" tools/cross-test.sh armv7-unknown-linux-gnueabihf
# Extra arguments go to every cargo test run: cargo's before `--`, the test binary's after it.
# FACEGATE_CROSS_DRY_RUN=1 prints the cargo commands instead of running them.
# Set CARGO_TARGET_DIR to keep these builds apart from native ones (default: target/cross).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-aarch64-unknown-linux-gnu}
[ $# -gt 0 ] && shift
[ -n "${FACEGATE_CROSS_DRY_RUN:-}" ] || tools/setup-cross.sh "$target"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cross}
# Cargo's arguments (before `--`) and the test binary's (after it), of the selection and of the
# extra arguments, each kept on its side.
cargo_args=()
test_args=()
split() {
  local side=cargo a
  for a in "$@"; do
    if [ "$side" = cargo ] && [ "$a" = -- ]; then
      side=test
    elif [ "$side" = cargo ]; then
      cargo_args+=("$a")
    else
      test_args+=("$a")
    fi
  done
}
run() {
  ${FACEGATE_CROSS_DRY_RUN:+echo} cargo test --locked --target "$target" "${cargo_args[@]}" -- "${test_args[@]}"
}
if [ -n "${FACEGATE_CROSS_TESTS:-}" ]; then
  # shellcheck disable=SC2206
  selection=($FACEGATE_CROSS_TESTS)
  split "${selection[@]}"
  split "$@"
  run
  exit
fi
split --lib
split "$@"
run
cargo_args=()
test_args=()
split --test main -- --skip daemon:: --skip camera:: --skip enroll:: --skip fuzz:: --skip mqtt:: --skip visits:: --skip framing:: --skip pipeline::jittered_enrolment_brings
split "$@"
run
