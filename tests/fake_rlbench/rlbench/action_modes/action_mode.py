"""FAKE rlbench.action_modes.action_mode: MoveArmThenGripper splits the action as the real one does."""
from __future__ import annotations

import numpy as np

from rlbench.action_modes.arm_action_modes import ArmActionMode
from rlbench.action_modes.gripper_action_modes import GripperActionMode


class ActionMode:
    def __init__(self, arm_action_mode: ArmActionMode, gripper_action_mode: GripperActionMode) -> None:
        self.arm_action_mode = arm_action_mode
        self.gripper_action_mode = gripper_action_mode


class MoveArmThenGripper(ActionMode):
    def action(self, scene: object, action: np.ndarray) -> None:
        arm_size = int(np.prod(self.arm_action_mode.action_shape(scene)))
        self.arm_action_mode.action(scene, np.array(action[:arm_size]))
        self.gripper_action_mode.action(scene, np.array(action[arm_size:]))

    def action_shape(self, scene: object) -> int:
        return int(np.prod(self.arm_action_mode.action_shape(scene)) +
                   np.prod(self.gripper_action_mode.action_shape(scene)))
