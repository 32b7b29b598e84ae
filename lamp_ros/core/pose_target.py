"""The safe twist as a pose target, for Cartesian impedance controllers that take an equilibrium pose instead of a
velocity (franka_ros2's cartesian impedance controller, FZI cartesian_controllers, CRISP). Contact tasks (lid,
tap, microwave) are gentler under impedance control: the arm yields where position control would push.

Every control period the target moves by the commanded velocity times the period, is clipped to the workspace
box, and never leads the measured end effector by more than `max_lead_m` (a target far ahead of the arm is a
large spring force). A zero twist (the safety layer's stop, stale input, e-stop) puts the target on the measured
position: the arm comes to rest where it is instead of finishing the lead. ROS-free."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lamp_ros.core.safety import SafetyConfig


@dataclass(frozen=True)
class PoseTargetConfig:
    workspace_min: tuple[float, float, float] = SafetyConfig.workspace_min     # the safety layer's box
    workspace_max: tuple[float, float, float] = SafetyConfig.workspace_max
    max_lead_m: float = 0.03                                            # LAMP's action scale: one step ahead

    def __post_init__(self) -> None:
        if not np.all(np.asarray(self.workspace_min) < np.asarray(self.workspace_max)):
            raise ValueError(f'workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}')
        if not self.max_lead_m > 0:
            raise ValueError(f'max_lead_m must be > 0, got {self.max_lead_m}')


class PoseTarget:
    def __init__(self, config: PoseTargetConfig) -> None:
        self.config = config
        self.low, self.high = np.asarray(config.workspace_min, float), np.asarray(config.workspace_max, float)
        self.position: np.ndarray | None = None          # None until the arm's pose is known

    def step(self, velocity: np.ndarray, dt: float, measured: np.ndarray) -> np.ndarray:
        """The target after one period of `velocity` (m/s, base frame) from the measured position (m)."""
        measured = np.asarray(measured, float)
        velocity = np.asarray(velocity, float)
        if self.position is None or not np.any(velocity):
            target = measured
        else:
            target = self.position + velocity * dt
            lead = target - measured
            distance = float(np.linalg.norm(lead))
            if distance > self.config.max_lead_m:
                target = measured + lead * (self.config.max_lead_m / distance)
        self.position = np.clip(target, self.low, self.high)
        return self.position.copy()
