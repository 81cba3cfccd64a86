#!/usr/bin/env bash
# The project's test command (README "Tests"; .ci/run runs it): every test, on real models and
# real photos. Dependencies are optimised even in this profile (Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
exec cargo test --locked "$@"
