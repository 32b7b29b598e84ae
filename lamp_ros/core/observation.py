"""The policy's proprioceptive state vector, built from named fields so the bundle decides what it needs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lamp_ros.contract import STATE_KEYS


@dataclass
class RobotState:
    """Latest robot readings with their arrival times (None until the first one)."""
    pose_t: float | None = None
    position: np.ndarray | None = None          # (3,) m
    quaternion: np.ndarray | None = None        # (4,) wxyz
    gripper_t: float | None = None
    gripper_opening: float | None = None        # 0 closed .. 1 open

    def missing(self, keys: tuple[str, ...], now: float, timeout_s: float) -> list[str]:
        """Which inputs needed by `keys` are absent or older than timeout_s (names as topics say them)."""
        problems = []
        needs_pose = any(k.startswith('ee_') for k in keys)
        if needs_pose and (self.pose_t is None or now - self.pose_t > timeout_s):
            problems.append('robot/ee_pose' if self.pose_t is None else 'robot/ee_pose (stale)')
        if 'gripper_opening' in keys and (self.gripper_t is None or now - self.gripper_t > timeout_s):
            problems.append('robot/gripper_state' if self.gripper_t is None else 'robot/gripper_state (stale)')
        return problems


_FIELDS = {
    'ee_x': lambda s: s.position[0], 'ee_y': lambda s: s.position[1], 'ee_z': lambda s: s.position[2],
    'ee_qw': lambda s: s.quaternion[0], 'ee_qx': lambda s: s.quaternion[1],
    'ee_qy': lambda s: s.quaternion[2], 'ee_qz': lambda s: s.quaternion[3],
    'gripper_opening': lambda s: s.gripper_opening,
}
assert set(_FIELDS) == set(STATE_KEYS), 'observation._FIELDS out of sync with contract.STATE_KEYS'


def state_vector(keys: tuple[str, ...], state: RobotState) -> np.ndarray:
    """Float32 vector in the order of `keys` (each one of contract.STATE_KEYS)."""
    return np.array([_FIELDS[k](state) for k in keys], dtype=np.float32)
