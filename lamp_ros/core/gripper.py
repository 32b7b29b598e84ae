"""Gripper command logic: a continuous gripper action becomes a clean open/close driver command."""
from __future__ import annotations

from dataclasses import dataclass

from lamp_ros.contract import GRIPPER_OPEN_THRESHOLD

OPEN, CLOSED = 1.0, 0.0


@dataclass(frozen=True)
class GripperConfig:
    open_threshold: float = GRIPPER_OPEN_THRESHOLD    # action >= threshold means open
    hysteresis: float = 0.1                           # must cross threshold +/- this to switch
    min_switch_interval_s: float = 0.5                # a driver (and the gripper) gets at most one switch per interval

    def __post_init__(self) -> None:
        if self.hysteresis < 0 or self.min_switch_interval_s < 0:
            raise ValueError('hysteresis and min_switch_interval_s must be >= 0')


class GripperLogic:
    """Threshold with hysteresis (no chatter around 0.5) and a rate limit on switches. A switch asked for too
    soon is remembered and happens as soon as the interval has passed (on the next `update`/`poll`)."""

    def __init__(self, config: GripperConfig) -> None:
        self.config = config
        self.command: float | None = None           # None until the first action: never move on start-up
        self._wanted: float | None = None
        self._switched_at = float('-inf')

    def update(self, t: float, action: float) -> float | None:
        """Feed a gripper action; returns the new command if it changed now, else None."""
        cfg = self.config
        if self._wanted is None:
            self._wanted = OPEN if action >= cfg.open_threshold else CLOSED
        elif self._wanted == CLOSED and action >= cfg.open_threshold + cfg.hysteresis:
            self._wanted = OPEN
        elif self._wanted == OPEN and action < cfg.open_threshold - cfg.hysteresis:
            self._wanted = CLOSED
        return self.poll(t)

    def poll(self, t: float) -> float | None:
        """Apply a pending switch once the rate limit allows; returns the new command if it changed."""
        if self._wanted is None or self._wanted == self.command:
            return None
        if self.command is not None and t - self._switched_at < self.config.min_switch_interval_s:
            return None
        self.command, self._switched_at = self._wanted, t
        return self.command
