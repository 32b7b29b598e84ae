"""Bringing the end effector to a home position with velocity commands (robot/reset for arms driven by twist, such
as through MoveIt Servo): a speed-capped approach that slows down near home, with the velocity change per period
capped too, so the homing motion keeps the safety layer's speed and acceleration limits. ROS-free."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lamp_ros.core.safety import SafetyConfig


@dataclass(frozen=True)
class HomingConfig:
    home: tuple[float, float, float] = (0.46, 0.0, 0.2)
    speed_mps: float = 0.1                                   # at most; below the safety layer's max speed
    accel_mps2: float = SafetyConfig.max_accel_mps2
    gain_per_s: float = 2.0                                  # approach speed = gain * distance, capped
    tolerance_m: float = 0.005
    workspace_min: tuple[float, float, float] = SafetyConfig.workspace_min
    workspace_max: tuple[float, float, float] = SafetyConfig.workspace_max

    def __post_init__(self) -> None:
        low, high, home = (np.asarray(v, float) for v in (self.workspace_min, self.workspace_max, self.home))
        if not np.all(low < high):
            raise ValueError(f'workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}')
        if not np.all((low <= home) & (home <= high)):
            raise ValueError(f'home {self.home} must lie in the workspace box {self.workspace_min}..'
                             f'{self.workspace_max}')
        for name in ('speed_mps', 'accel_mps2', 'gain_per_s', 'tolerance_m'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if self.speed_mps > SafetyConfig.max_speed_mps:
            raise ValueError(f'speed_mps {self.speed_mps} exceeds the safety layer max_speed_mps '
                             f'{SafetyConfig.max_speed_mps}')


class Homing:
    def __init__(self, config: HomingConfig) -> None:
        self.config = config
        self.home = np.asarray(config.home, float)
        self.velocity = np.zeros(3)

    def arrived(self, position: np.ndarray) -> bool:
        return float(np.linalg.norm(self.home - np.asarray(position, float))) <= self.config.tolerance_m

    def step(self, position: np.ndarray, dt: float) -> np.ndarray:
        """The velocity (m/s) for the next period of `dt` s from the measured `position`."""
        cfg = self.config
        offset = self.home - np.asarray(position, float)
        distance = float(np.linalg.norm(offset))
        if distance <= cfg.tolerance_m:
            wanted = np.zeros(3)
        else:
            # no faster than a stop within the remaining distance allows, so the approach does not overshoot
            speed = min(cfg.speed_mps, cfg.gain_per_s * distance, float(np.sqrt(2 * cfg.accel_mps2 * distance)))
            wanted = offset / distance * speed
        change = wanted - self.velocity
        limit = cfg.accel_mps2 * dt
        norm = float(np.linalg.norm(change))
        if norm > limit:
            change *= limit / norm
        self.velocity = self.velocity + change
        return self.velocity.copy()

    def stop(self) -> None:
        self.velocity = np.zeros(3)
