#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and opens the explorer GUI on the bundled model.
# Extra arguments go to handlatent-gui (e.g. --checkpoint run/best.pt, --screenshot out.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "start: no display found; running on a virtual X server (xvfb-run)" >&2
  exec xvfb-run -a .venv/bin/handlatent-gui "$@"
fi
exec .venv/bin/handlatent-gui "$@"
