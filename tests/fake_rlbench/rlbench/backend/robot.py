"""FAKE rlbench.backend.robot: Robot(arm, gripper) with a FAKE Panda arm tip and gripper."""
from __future__ import annotations

import numpy as np

import fake_coppeliasim
from pyrep.objects.shape import Shape


class FakeTip:
    """FAKE of the arm tip Dummy: its pose is the FAKE scene's tip."""

    def get_position(self) -> np.ndarray:
        return fake_coppeliasim.SCENE.tip_position.copy()

    def get_pose(self) -> np.ndarray:
        scene = fake_coppeliasim.SCENE
        return np.concatenate([scene.tip_position, scene.tip_quaternion])


class FakePandaArm:
    def get_tip(self) -> FakeTip:
        return FakeTip()


class FakePandaGripper:
    def get_grasped_objects(self) -> list[Shape]:
        return [Shape(name) for name in fake_coppeliasim.SCENE.grasped]

    def get_open_amount(self) -> list[float]:
        amount = 1.0 if fake_coppeliasim.SCENE.gripper_open else 0.0
        return [amount, amount]


class Robot:
    def __init__(self, arm: FakePandaArm, gripper: FakePandaGripper) -> None:
        self.arm = arm
        self.gripper = gripper
