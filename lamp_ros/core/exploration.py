"""Exploration on the robot while finetuning: Gaussian noise on the policy's action, as the sim trainer adds it
(training/agent/drq.py, act(explore=True)): `std` on the motion, `gripper_fraction` of it on the gripper (0:
the gripper follows the policy, so exploration does not hide in the open-gripper trap), the result kept in
[-1, 1]. The learner learns from the action the safety layer applied (control/applied_action), noise included,
so a critic sees what a slightly different action leads to. Deploying runs without it (std 0)."""
from __future__ import annotations

import numpy as np

from lamp_ros.contract import ACTION_DIM


class ActionNoise:
    def __init__(self, std: float, gripper_fraction: float = 0.0, seed: int | None = None) -> None:
        if not 0.0 <= gripper_fraction <= 1.0:
            raise ValueError(f'explore_gripper must be in [0, 1] (a fraction of explore_std), got {gripper_fraction}')
        self.gripper_fraction = gripper_fraction
        self.scale = np.zeros(ACTION_DIM, np.float32)
        self.set_std(std)
        self.rng = np.random.default_rng(seed)

    def set_std(self, std: float) -> None:
        """A new noise level (a schedule, as the sim trainer's decaying std), the gripper's fraction kept."""
        if not 0.0 <= std <= 1.0:
            raise ValueError(f'explore_std must be in [0, 1] (action units), got {std}')
        self.scale[:] = std
        self.scale[-1] *= self.gripper_fraction

    @property
    def active(self) -> bool:
        return bool(self.scale.any())

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if not self.active:
            return action
        noisy = action + self.rng.standard_normal(ACTION_DIM).astype(np.float32) * self.scale
        return np.clip(noisy, -1.0, 1.0).astype(np.float32)
