# Source me: the environment every visio_memoria process runs in (venv + ROS + local DDS).
# shellcheck shell=bash
_vm_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "$_vm_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
if [ -f "$_vm_root/.venv/ros-cli/local_setup.bash" ]; then
  # ros2 launch / service / param / topic for a machine without a ROS install (bootstrap.sh)
  # shellcheck disable=SC1091
  . "$_vm_root/.venv/ros-cli/local_setup.bash"
fi
if [ -f "$_vm_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_vm_root/install/setup.bash"
fi
# DDS discovery stays on this machine; a domain of our own unless the caller chose one.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 90) + 10 ))}"
# Large images between processes: a bigger Fast DDS shared-memory segment (config/fastdds.xml).
# Fast DDS 2 (Humble) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 FASTDDS_DEFAULT_PROFILES_FILE.
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]; then
  if [ "${ROS_DISTRO:-}" = humble ]; then
    export FASTRTPS_DEFAULT_PROFILES_FILE="$_vm_root/config/fastdds.xml"
  else
    export FASTDDS_DEFAULT_PROFILES_FILE="$_vm_root/config/fastdds.xml"
  fi
fi
export YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset _vm_root
