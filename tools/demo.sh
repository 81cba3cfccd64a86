#!/usr/bin/env bash
# The embedded demo: the whole door pipeline on a replayed real recording with a simulated
# lock (no camera, no GPIO). See config/demo.toml. Extra arguments go to `facegate run`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
exec cargo run --quiet -- run --config config/demo.toml "$@"
