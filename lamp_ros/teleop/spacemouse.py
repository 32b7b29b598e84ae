"""SpaceMouse (3Dconnexion) teleop through pyspacemouse, which reads the raw HID reports via the hidapi C
library (Debian: libhidapi-hidraw0; the user needs read access to /dev/hidraw*: docs/operator.md).

Translation maps to (dx, dy, dz) in ROS's convention (x forward, y left, z up, seen from behind the
device); axis_signs flips axes to match how the device sits relative to the robot. The left button
closes the gripper, the right button opens it. The operator is engaged while the cap is pushed past the
deadzone or a button is held: letting go hands control back.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lamp_ros.teleop.device import DeviceInput, DeviceUnavailable, check_axis_signs, deadzone

PYSPACEMOUSE_PIN = 'pyspacemouse==2.1.0'
MAX_REPORTS_PER_READ = 64


@dataclass(frozen=True)
class SpaceMouseConfig:
    deadzone: float = 0.1
    axis_signs: tuple[float, float, float] = (1.0, 1.0, 1.0)
    close_button: int = 0
    open_button: int = 1

    def __post_init__(self) -> None:
        deadzone(0.0, self.deadzone)
        check_axis_signs(self.axis_signs)


class SpaceMouseMapper:
    """Device readings -> DeviceInput (a gripper command on a button's press, not while it is held)."""

    def __init__(self, config: SpaceMouseConfig = SpaceMouseConfig()) -> None:
        self.config = config
        self._pressed: set[int] = set()

    def map(self, translation: Sequence[float], buttons: Sequence[int]) -> DeviceInput:
        motion = np.array([deadzone(v, self.config.deadzone) * s for v, s in zip(translation, self.config.axis_signs)])
        pressed = {i for i, b in enumerate(buttons) if b}
        new, self._pressed = pressed - self._pressed, pressed
        gripper = 'close' if self.config.close_button in new else 'open' if self.config.open_button in new else None
        return DeviceInput(motion, bool(np.any(motion != 0.0) or pressed), gripper)


class SpaceMouse:
    name = 'spacemouse'

    def __init__(self, device: Any, config: SpaceMouseConfig) -> None:
        self._device = device
        self.mapper = SpaceMouseMapper(config)
        from easyhid import HIDException           # pyspacemouse's HID layer
        self._hid_error = HIDException

    def read(self, now: float) -> DeviceInput:
        """Drain every report that arrived since the last read (the device streams while moved)."""
        try:
            state = self._device.read()
            for _ in range(MAX_REPORTS_PER_READ):
                before = state.t
                state = self._device.read()
                if state.t == before:
                    break
        except self._hid_error as e:
            raise DeviceUnavailable(f'SpaceMouse stopped answering (unplugged?): {e}') from e
        return self.mapper.map((state.x, state.y, state.z), list(state.buttons))

    def close(self) -> None:
        self._device.close()


def open_device(config: SpaceMouseConfig) -> SpaceMouse:
    if importlib.util.find_spec('pyspacemouse') is None:
        raise DeviceUnavailable(f'SpaceMouse support needs the pyspacemouse package: pip install {PYSPACEMOUSE_PIN}')
    import pyspacemouse
    try:
        names = pyspacemouse.get_connected_devices()
    except RuntimeError as e:                      # what pyspacemouse raises when the hidapi C library is absent
        raise DeviceUnavailable(f'SpaceMouse support needs the hidapi C library: apt-get install libhidapi-hidraw0 '
                                f'({e})') from e
    if not names:
        raise DeviceUnavailable('no SpaceMouse found: plug it in (if it is plugged in, check `lsusb` for a '
                                '3Dconnexion device and the udev rule in docs/operator.md)')
    try:
        device = pyspacemouse.open(device=names[0], nonblocking=True,
                                   axis_convention=pyspacemouse.AxisConvention.ROS)
    except (RuntimeError, ValueError) as e:
        raise DeviceUnavailable(f'cannot open the SpaceMouse {names[0]}: {e}; this user may lack access to '
                                f'/dev/hidraw* (udev rule: docs/operator.md)') from e
    return SpaceMouse(device, config)
