"""FAKE rlbench.backend.scene.Scene: makes Observations with deterministic FAKE images of the FAKE scene.

The front image marks every object (grey) and the tip (green) in a y-z projection; the wrist image's colour
encodes tip height and gripper state and marks the goal's offset from the tip. Disabled sensors give None.
"""
from __future__ import annotations

import numpy as np

import fake_coppeliasim
from rlbench.backend.observation import Observation
from rlbench.backend.robot import Robot
from rlbench.backend.task import Task
from rlbench.observation_config import ObservationConfig


def _mark(image: np.ndarray, u: float, v: float, colour: tuple[int, int, int]) -> None:
    """Paint a small square at fractional image coordinates (u right, v down), clipped to the image."""
    height, width = image.shape[:2]
    size = max(1, width // 16)
    col = int(np.clip(u * width, 0, width - size))
    row = int(np.clip(v * height, 0, height - size))
    image[row:row + size, col:col + size] = colour


class Scene:
    def __init__(self, robot: Robot, obs_config: ObservationConfig) -> None:
        self.robot = robot
        self.task: Task | None = None
        self._obs_config = obs_config

    def _front_image(self, size: tuple[int, int]) -> np.ndarray:
        fake = fake_coppeliasim.SCENE
        image = np.full((*size, 3), 40, dtype=np.uint8)
        for obj in fake.objects.values():
            _mark(image, 0.5 + obj.position[1], 1.8 - obj.position[2], (200, 200, 200))
        _mark(image, 0.5 + fake.tip_position[1], 1.8 - fake.tip_position[2], (0, 255, 0))
        return image

    def _wrist_image(self, size: tuple[int, int]) -> np.ndarray:
        fake = fake_coppeliasim.SCENE
        colour = (int(fake.tip_position[2] * 100) % 256, 255 if fake.gripper_open else 0, 128)
        image = np.empty((*size, 3), dtype=np.uint8)
        image[:] = colour
        goal = fake.objects[self.task.FAKE_GOAL].position - fake.tip_position
        _mark(image, 0.5 + goal[1], 0.5 + goal[0], (255, 0, 0))
        return image

    def get_observation(self) -> Observation:
        config = self._obs_config
        fake = fake_coppeliasim.SCENE
        cameras = config.cameras()
        return Observation(
            front_rgb=self._front_image(cameras['front'].image_size) if cameras['front'].rgb else None,
            wrist_rgb=self._wrist_image(cameras['wrist'].image_size) if cameras['wrist'].rgb else None,
            left_shoulder_rgb=None if not cameras['left_shoulder'].rgb else np.zeros((1, 1, 3), np.uint8),
            right_shoulder_rgb=None if not cameras['right_shoulder'].rgb else np.zeros((1, 1, 3), np.uint8),
            overhead_rgb=None if not cameras['overhead'].rgb else np.zeros((1, 1, 3), np.uint8),
            joint_positions=np.zeros(7) if config.joint_positions else None,
            joint_velocities=np.zeros(7) if config.joint_velocities else None,
            gripper_open=(1.0 if fake.gripper_open else 0.0) if config.gripper_open else None,
            gripper_pose=self.robot.arm.get_tip().get_pose() if config.gripper_pose else None,
            gripper_joint_positions=np.zeros(2) if config.gripper_joint_positions else None,
            task_low_dim_state=np.zeros(3) if config.task_low_dim_state else None)
