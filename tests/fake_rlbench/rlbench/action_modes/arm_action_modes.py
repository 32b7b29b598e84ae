"""FAKE rlbench.action_modes.arm_action_modes: EndEffectorPoseViaPlanning over the FAKE scene.

Checks what the real one checks (shape (7,), unit quaternion, target inside the workspace) and raises the
real error types; 'planning' teleports the tip. Tests queue failures in fake_coppeliasim.SCENE.planning_failures.
"""
from __future__ import annotations

from enum import Enum

import numpy as np

import fake_coppeliasim
from rlbench.backend.exceptions import InvalidActionError


def assert_action_shape(action: np.ndarray, expected_shape: tuple[int, ...]) -> None:
    if np.shape(action) != expected_shape:
        raise InvalidActionError(f'Expected the action shape to be: {expected_shape}, but was shape: '
                                 f'{np.shape(action)}')


def assert_unit_quaternion(quaternion: np.ndarray) -> None:
    if not np.isclose(np.linalg.norm(quaternion), 1.0):
        raise InvalidActionError('Action contained non unit quaternion!')


def multiply_xyzw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (x, y, z, w) quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


class RelativeFrame(Enum):
    WORLD = 0
    EE = 1


class ArmActionMode:
    def action_shape(self, scene: object) -> tuple[int, ...]:
        raise NotImplementedError


class EndEffectorPoseViaPlanning(ArmActionMode):
    def __init__(self, absolute_mode: bool = True, frame: RelativeFrame = RelativeFrame.WORLD,
                 collision_checking: bool = False) -> None:
        self._absolute_mode = absolute_mode
        self._frame = frame
        self._collision_checking = collision_checking

    def action(self, scene: object, action: np.ndarray) -> None:
        assert_action_shape(action, (7,))
        assert_unit_quaternion(action[3:])
        fake = fake_coppeliasim.SCENE
        if self._absolute_mode:
            position, quaternion = action[:3], action[3:]
        else:                                             # delta in the world frame, rotation composed
            position = fake.tip_position + action[:3]
            quaternion = multiply_xyzw(action[3:], fake.tip_quaternion)
        if np.any(position < fake_coppeliasim.WORKSPACE_LOW) or np.any(position > fake_coppeliasim.WORKSPACE_HIGH):
            raise InvalidActionError('A path could not be found because the target is outside of workspace.')
        if fake.planning_failures:
            raise fake.planning_failures.pop(0)
        fake.move_tip(position, quaternion)

    def action_shape(self, scene: object) -> tuple[int, ...]:
        return (7,)
