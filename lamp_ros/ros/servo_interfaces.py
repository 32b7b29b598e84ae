"""The packages the MoveIt Servo adapter needs and a pip-only install lacks (moveit_msgs for servo's service and
status types, tf2_ros for the end-effector pose): imported here, only when robot:=servo asks for them, and their
absence is one line naming what to install."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lamp_ros.ros.node_process import BadParameter

NEEDED = (('moveit_msgs.srv', 'moveit_msgs'), ('moveit_msgs.msg', 'moveit_msgs'), ('tf2_ros', 'tf2_ros'))


@dataclass(frozen=True)
class ServoInterfaces:
    ServoCommandType: Any          # moveit_msgs/srv/ServoCommandType
    ServoStatus: Any               # moveit_msgs/msg/ServoStatus
    tf2_ros: ModuleType


def servo_interfaces() -> ServoInterfaces:
    modules, missing = {}, []
    for module, package in NEEDED:
        try:
            modules[module] = importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        names = sorted(set(missing))
        raise BadParameter(f"robot:=servo needs {' and '.join(names)}, not installed here (apt install "
                           f"{' '.join('ros-$ROS_DISTRO-' + n.replace('_', '-') for n in names)}, with MoveIt "
                           'Servo running)')
    return ServoInterfaces(modules['moveit_msgs.srv'].ServoCommandType, modules['moveit_msgs.msg'].ServoStatus,
                           modules['tf2_ros'])
