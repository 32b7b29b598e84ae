"""Where the package's share files (config/, launch/, bundles/default/) are, for every way lamp_ros can be
installed:

  source checkout / `pip install -e`   -> the repository itself (editable installs get no data_files)
  colcon or a sourced ROS workspace    -> the ament index (AMENT_PREFIX_PATH)
  `pip install .` into a venv/prefix   -> <sys.prefix>/share/lamp_ros
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = 'lamp_ros'


def share_dir() -> Path:
    repo = Path(__file__).resolve().parents[1]
    if (repo / 'package.xml').is_file() and (repo / 'config').is_dir():
        return repo
    for prefix in [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p] + [sys.prefix]:
        candidate = Path(prefix) / 'share' / PACKAGE
        if (candidate / 'package.xml').is_file():
            return candidate
    raise FileNotFoundError(f'cannot find share/{PACKAGE} (config/, launch/): not in a source checkout, not on '
                            f'AMENT_PREFIX_PATH and not under {sys.prefix}/share; reinstall lamp_ros')


def config_file(name: str) -> Path:
    return share_dir() / 'config' / name


def default_bundle_dir() -> Path:
    """The policy bundle shipped with the package: what `lamp-ros deploy` runs in sim without --bundle.
    Its text_encoder.onnx is not in git: setup builds it (`lamp-export text-encoder --bundle DIR`)."""
    return share_dir() / 'bundles' / 'default'


def data_dir() -> Path:
    """Per-user data (weights, runs, learner state); LAMP_ROS_HOME overrides."""
    return Path(os.environ.get('LAMP_ROS_HOME', Path.home() / '.local' / 'share' / PACKAGE)).expanduser()


def state_dir() -> Path:
    """Per-user state that must survive restarts but is no data (the safety node's latched e-stop):
    $XDG_STATE_HOME/lamp_ros, by default ~/.local/state/lamp_ros."""
    return Path(os.environ.get('XDG_STATE_HOME') or Path.home() / '.local' / 'state').expanduser() / PACKAGE
