#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and runs the whole test suite headless (pytest-xvfb starts Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
