"""FAKE rlbench.action_modes.gripper_action_modes.Discrete: > 0.5 opens, else closes (grasping nearby shapes)."""
from __future__ import annotations

import numpy as np

import fake_coppeliasim
from rlbench.action_modes.arm_action_modes import assert_action_shape


class GripperActionMode:
    def action_shape(self, scene: object) -> tuple[int, ...]:
        raise NotImplementedError


class Discrete(GripperActionMode):
    def __init__(self, attach_grasped_objects: bool = True, detach_before_open: bool = True) -> None:
        self._attach_grasped_objects = attach_grasped_objects
        self._detach_before_open = detach_before_open

    def action(self, scene: object, action: np.ndarray) -> None:
        assert_action_shape(action, (1,))
        fake = fake_coppeliasim.SCENE
        open_ = bool(action[0] > 0.5)
        if open_ == fake.gripper_open:
            return
        fake.gripper_open = open_
        if open_:
            fake.grasped = []
        elif self._attach_grasped_objects:
            fake.grasped = [name for name in scene.task.get_graspable_objects()
                            if np.linalg.norm(fake.objects[name].position - fake.tip_position)
                            < fake_coppeliasim.GRASP_RADIUS_M]

    def action_shape(self, scene: object) -> tuple[int, ...]:
        return (1,)
