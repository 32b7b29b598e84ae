"""The policy's proprioceptive state vector, built from named fields so the bundle decides what it needs."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

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


@dataclass(frozen=True)
class _Reading:
    stamp: float                                # the message's header stamp, s
    arrival: float                              # when it arrived here, s
    values: tuple


class StateHistory:
    """Recent pose and gripper readings by header stamp, so an image is paired with the state of its own
    instant. A camera frame and the pose of the same tick come on two topics in either order; pairing a
    frame with whatever pose came last gives the policy a state up to a period old (3 cm at full speed),
    and which one it got depended on the machine's load (a deploy-graph episode lost that way)."""

    def __init__(self, keep: int = 32) -> None:
        self._poses: deque[_Reading] = deque(maxlen=keep)
        self._grippers: deque[_Reading] = deque(maxlen=keep)

    def add_pose(self, stamp: float, arrival: float, position: np.ndarray, quaternion: np.ndarray) -> None:
        self._poses.append(_Reading(stamp, arrival, (position, quaternion)))

    def add_gripper(self, stamp: float, arrival: float, opening: float) -> None:
        self._grippers.append(_Reading(stamp, arrival, (opening,)))

    def latest(self) -> RobotState:
        return self._state(self._poses[-1] if self._poses else None,
                           self._grippers[-1] if self._grippers else None)

    def at(self, stamp: float) -> RobotState:
        """The readings stamped nearest `stamp` (the newest on a tie, e.g. drivers that leave stamps at 0)."""
        return self._state(_nearest(self._poses, stamp), _nearest(self._grippers, stamp))

    def caught_up(self, keys: tuple[str, ...], stamp: float, arrival: float) -> bool:
        """Whether every stream `keys` need has a reading from `stamp` on, or one that arrived after `arrival`
        (the image's): then waiting longer cannot give a closer one."""
        streams = [self._poses] if any(k.startswith('ee_') for k in keys) else []
        streams += [self._grippers] if 'gripper_opening' in keys else []
        return all(q and (q[-1].stamp >= stamp or q[-1].arrival >= arrival) for q in streams)

    @staticmethod
    def _state(pose: _Reading | None, gripper: _Reading | None) -> RobotState:
        state = RobotState()
        if pose is not None:
            state = replace(state, pose_t=pose.arrival, position=pose.values[0], quaternion=pose.values[1])
        if gripper is not None:
            state = replace(state, gripper_t=gripper.arrival, gripper_opening=gripper.values[0])
        return state


def _nearest(readings: deque[_Reading], stamp: float) -> _Reading | None:
    best = None
    for reading in reversed(readings):
        if best is None or abs(reading.stamp - stamp) < abs(best.stamp - stamp):
            best = reading
    return best


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
