"""FAKE rlbench.backend.observation.Observation: the real attribute names the backend reads (None when off)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    front_rgb: np.ndarray | None
    wrist_rgb: np.ndarray | None
    left_shoulder_rgb: np.ndarray | None
    right_shoulder_rgb: np.ndarray | None
    overhead_rgb: np.ndarray | None
    joint_positions: np.ndarray | None
    joint_velocities: np.ndarray | None
    gripper_open: float | None
    gripper_pose: np.ndarray | None                 # tip x, y, z, qx, qy, qz, qw
    gripper_joint_positions: np.ndarray | None
    task_low_dim_state: np.ndarray | None
