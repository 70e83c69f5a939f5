#!/usr/bin/env bash
# Installs what handlatent needs on a fresh Debian machine (as root): Xvfb and Qt's xcb libraries from apt,
# then a virtual environment in .venv with the CPU torch pinned by constraints.txt. Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxcb-image0
  libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 libgl1
  libegl1 libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libfontconfig1 libdbus-1-3 libglib2.0-0 libx11-xcb1"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "setup: installing system packages:$missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.handlatent-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  log=$(mktemp)
  # torch first, from the pinned CPU wheel, so no dependency can pull a CUDA build.
  if ! { .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0 &&
         .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"; } >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
    echo "setup: pip install failed (full log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
