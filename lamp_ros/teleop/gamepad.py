"""Gamepad teleop through pygame (SDL2's joystick support; no window: SDL_VIDEODRIVER=dummy).

Default mapping (an Xbox-style pad as SDL reports it on Linux): left stick forward/back = dx, left stick
left/right = dy, right stick forward/back = dz; hold RB (the dead-man button) to move; A closes, B opens
the gripper. Other pads number axes and buttons differently: set the gamepad.* parameters (the node logs the
pad's name and its axis and button counts). With deadman_button = -1 a deflected stick engages by itself.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lamp_ros.teleop.device import DeviceInput, DeviceUnavailable, check_axis_signs, deadzone

PYGAME_PIN = 'pygame==2.6.1'


@dataclass(frozen=True)
class GamepadConfig:
    deadzone: float = 0.15
    axes: tuple[int, int, int] = (1, 0, 4)              # joystick axis for dx, dy, dz
    axis_signs: tuple[float, float, float] = (-1.0, -1.0, -1.0)   # SDL: stick forward / left is negative
    deadman_button: int = 5                              # RB; -1: none
    close_button: int = 0                                # A
    open_button: int = 1                                 # B
    index: int = 0                                       # which pad, if several

    def __post_init__(self) -> None:
        deadzone(0.0, self.deadzone)
        check_axis_signs(self.axis_signs)
        if len(self.axes) != 3 or min(self.axes) < 0:
            raise ValueError(f'axes must be three joystick axis numbers >= 0 (dx, dy, dz), got {list(self.axes)}')


class GamepadMapper:
    """Axis and button values -> DeviceInput (gripper commands on press)."""

    def __init__(self, config: GamepadConfig = GamepadConfig()) -> None:
        self.config = config
        self._pressed: set[int] = set()

    def map(self, axes: Sequence[float], buttons: Sequence[int]) -> DeviceInput:
        c = self.config
        pressed = {i for i, b in enumerate(buttons) if b}
        new, self._pressed = pressed - self._pressed, pressed
        gripper = 'close' if c.close_button in new else 'open' if c.open_button in new else None
        motion = np.array([deadzone(axes[a], c.deadzone) * s for a, s in zip(c.axes, c.axis_signs)])
        gripper_held = bool({c.close_button, c.open_button} & pressed)
        if c.deadman_button >= 0:
            if c.deadman_button not in pressed:
                motion = np.zeros(3)
            engaged = c.deadman_button in pressed or gripper_held
        else:
            engaged = bool(np.any(motion != 0.0)) or gripper_held
        return DeviceInput(motion, engaged, gripper if engaged else None)


class Gamepad:
    name = 'gamepad'

    def __init__(self, pygame: Any, joystick: Any, config: GamepadConfig) -> None:
        self._pygame, self._joystick = pygame, joystick
        self.mapper = GamepadMapper(config)
        self.description = (f'{joystick.get_name()} ({joystick.get_numaxes()} axes, '
                            f'{joystick.get_numbuttons()} buttons)')

    def read(self, now: float) -> DeviceInput:
        pg, js = self._pygame, self._joystick
        for event in pg.event.get():
            if event.type == pg.JOYDEVICEREMOVED and event.instance_id == js.get_instance_id():
                raise DeviceUnavailable(f'gamepad {js.get_name()} was unplugged')
        axes = [js.get_axis(i) for i in range(js.get_numaxes())]
        buttons = [js.get_button(i) for i in range(js.get_numbuttons())]
        return self.mapper.map(axes, buttons)

    def close(self) -> None:
        self._joystick.quit()
        self._pygame.joystick.quit()
        self._pygame.display.quit()


def open_device(config: GamepadConfig) -> Gamepad:
    if importlib.util.find_spec('pygame') is None:
        raise DeviceUnavailable(f'gamepad support needs pygame: pip install {PYGAME_PIN}')
    os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')          # no window: SDL only reads the pad
    os.environ.setdefault('PYGAME_HIDE_SUPPORT_PROMPT', '1')
    import pygame
    pygame.display.init()
    pygame.joystick.quit()                                     # re-scan: a pad plugged in since the last try
    pygame.joystick.init()
    count = pygame.joystick.get_count()
    if count <= config.index:
        pygame.display.quit()
        raise DeviceUnavailable(f'no gamepad found (SDL sees {count}, gamepad.index is {config.index}): plug one '
                                f'in; if it is plugged in, this user may lack access to /dev/input/event* '
                                f'(docs/operator.md)')
    joystick = pygame.joystick.Joystick(config.index)
    joystick.init()
    needed_axes = max(config.axes) + 1
    needed_buttons = max(config.deadman_button, config.close_button, config.open_button) + 1
    if joystick.get_numaxes() < needed_axes or joystick.get_numbuttons() < needed_buttons:
        name, axes, buttons = joystick.get_name(), joystick.get_numaxes(), joystick.get_numbuttons()
        joystick.quit()
        pygame.display.quit()
        raise DeviceUnavailable(f'gamepad {name} has {axes} axes and {buttons} buttons; the mapping needs '
                                f'{needed_axes} and {needed_buttons}: set gamepad.axes / gamepad.*_button')
    return Gamepad(pygame, joystick, config)
