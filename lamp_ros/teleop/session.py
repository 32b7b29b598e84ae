"""From what the operator does on a device to the 4-D action the teleop node publishes.

Motion is scaled by `speed` (the fraction of the policy's full action the device's full deflection means).
The gripper: when the operator takes over, the action keeps the gripper as it was last commanded (so taking
over never drops what the arm holds) until the operator gives a gripper command. While the operator does not
use the device, there is no action at all: the safety node then hands control back to the policy after
its hold-off (control/mode 'auto').
"""
from __future__ import annotations

import numpy as np

from lamp_ros.contract import GRIPPER_OPEN_THRESHOLD
from lamp_ros.teleop.device import DeviceInput

GRIPPER_OPEN, GRIPPER_CLOSED = 1.0, -1.0


class TeleopSession:
    def __init__(self, speed: float) -> None:
        if not 0.0 < speed <= 1.0:
            raise ValueError(f'speed must be in (0, 1], got {speed}')
        self.speed = speed
        self.engaged = False
        self.gripper = GRIPPER_OPEN
        self.last_commanded_gripper: float | None = None     # from safety/gripper_action

    def on_commanded_gripper(self, value: float) -> None:
        """What the safety layer last passed to the gripper (policy's or operator's)."""
        self.last_commanded_gripper = float(value)

    def step(self, device: DeviceInput) -> np.ndarray | None:
        """The action to publish now, or None while the operator does not use the device."""
        if device.engaged and not self.engaged:
            commanded = self.last_commanded_gripper
            self.gripper = GRIPPER_OPEN if commanded is None or commanded >= GRIPPER_OPEN_THRESHOLD else GRIPPER_CLOSED
        self.engaged = device.engaged
        if not device.engaged:
            return None
        if device.gripper is not None:
            self.gripper = GRIPPER_OPEN if device.gripper == 'open' else GRIPPER_CLOSED
        motion = np.clip(np.asarray(device.motion, dtype=np.float64) * self.speed, -1.0, 1.0)
        return np.array([*motion, self.gripper], dtype=np.float32)
