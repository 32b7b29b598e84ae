"""Privileged state: what the simulator knows and a robot's sensors do not, for sim-only training.

An asymmetric actor-critic (Pinto et al. 2018) gives it to the critic alone: the policy still acts on camera,
proprioception and instruction (what a robot has, and what the exported bundle takes), while the critic's value
no longer has to be read from 64-pixel images, e.g. whether a lifted lid is 4.6 or 5 cm up.

    privileged_state(scene) float32 [PRIVILEGED_DIM]:
        focus point (task.focus_point) in the TCP's box scaled to [-1, 1]   3
        focus point - TCP, in units of 10 cm, clipped to [-3, 3]            3
        the task's shaped reward (its progress: approach, grasp, lift)      1
"""
from __future__ import annotations

import numpy as np

from sim.scene import LampScene

PRIVILEGED_DIM = 7
OFFSET_UNIT_M = 0.1
OFFSET_CLIP = 3.0


def privileged_state(scene: LampScene) -> np.ndarray:
    """The scene's privileged state now (layout in the module docstring)."""
    arm = scene.config.arm
    low, high = np.asarray(arm.target_low, float), np.asarray(arm.target_high, float)
    focus = scene.task.focus_point()
    scaled = (focus - low) * (2.0 / (high - low)) - 1.0
    offset = np.clip((focus - scene.ee_position()) / OFFSET_UNIT_M, -OFFSET_CLIP, OFFSET_CLIP)
    return np.array([*scaled, *offset, scene.reward()], dtype=np.float32)
