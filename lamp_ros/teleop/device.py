"""What every teleop device back-end gives the teleop node, and how a back-end is chosen.

A back-end reports, each time it is read: a motion (dx, dy, dz) in [-1, 1] with its deadzone applied, whether
the operator is using the device at all ('engaged': only then does the operator's action replace the
policy's), and a gripper command if the operator gave one. A device that cannot be used raises
DeviceUnavailable with a message that says why and what to do; nothing else is expected to escape.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

DEVICES = ('keyboard', 'spacemouse', 'gamepad')
GRIPPER_COMMANDS = ('open', 'close')


class DeviceUnavailable(RuntimeError):
    """The device cannot be used (absent, no permission, library missing); the message says what to do."""


@dataclass(frozen=True)
class DeviceInput:
    motion: np.ndarray = field(default_factory=lambda: np.zeros(3))   # dx dy dz in [-1, 1], deadzone applied
    engaged: bool = False                      # the operator is using the device
    gripper: str | None = None                 # 'open' / 'close', commanded since the last read

    def __post_init__(self) -> None:
        if np.shape(self.motion) != (3,):
            raise ValueError(f'motion must have 3 values (dx, dy, dz), got shape {np.shape(self.motion)}')
        if self.gripper is not None and self.gripper not in GRIPPER_COMMANDS:
            raise ValueError(f'gripper command must be one of {GRIPPER_COMMANDS} or None, got {self.gripper!r}')


class TeleopDevice(Protocol):
    name: str

    def read(self, now: float) -> DeviceInput:
        """Latest input, without blocking; `now` is time.monotonic()."""

    def close(self) -> None:
        """Release the device (and restore the terminal, for the keyboard)."""


def deadzone(value: float, width: float) -> float:
    """0 inside [-width, width], then rising linearly to +-1 at full deflection: no jump at the edge."""
    if not 0.0 <= width < 1.0:
        raise ValueError(f'deadzone must be in [0, 1), got {width}')
    value = float(np.clip(value, -1.0, 1.0))
    if abs(value) <= width:
        return 0.0
    return float(np.sign(value) * (abs(value) - width) / (1.0 - width))


def check_axis_signs(signs: tuple[float, ...]) -> None:
    if len(signs) != 3 or any(s not in (-1.0, 1.0) for s in signs):
        raise ValueError(f'axis_signs must be three values of 1.0 or -1.0 (dx, dy, dz), got {list(signs)}')


def open_device(name: str, config: object) -> TeleopDevice:
    """Open the back-end `name` with its config (KeyboardConfig, SpaceMouseConfig or GamepadConfig)."""
    if name not in DEVICES:
        raise ValueError(f'unknown teleop device {name!r}; choose one of {DEVICES}')
    module = importlib.import_module(f'lamp_ros.teleop.{name}')
    return module.open_device(config)
