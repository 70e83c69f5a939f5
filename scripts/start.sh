#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and opens the explorer GUI on the bundled model.
# Extra arguments go to handlatent-gui (e.g. an image, --checkpoint run/best.pt, --screenshot out.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  case " $* " in
    *" --screenshot "*)   # no screen, but a picture was asked for: a virtual X server suffices
      exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/handlatent-gui "$@" ;;
  esac
  echo "start: no display (DISPLAY is not set): run this on a desktop, or add --screenshot OUT.png" \
       "to save a picture of the window from a virtual screen" >&2
  exit 2
fi
exec .venv/bin/handlatent-gui "$@"
