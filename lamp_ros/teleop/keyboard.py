"""Keyboard teleop from the terminal the teleop node runs in.

A terminal reports key presses, never releases. So a press moves along its axis for `key_hold_s` (longer
than the terminal's auto-repeat delay, so holding a key moves smoothly); once presses come as fast as
auto-repeat, motion stops `repeat_hold_s` after the last one, so letting go of a held key stops the arm
quickly. The operator is 'engaged' while any axis moves or shortly after a gripper or halt key.

    w / s  or  Up / Down          +x / -x (away from / toward the robot base)
    a / d  or  Left / Right       +y / -y
    r / f  or  PageUp / PageDown  +z / -z (up / down)
    o / c                         open / close the gripper
    space                         halt: hold the arm still (operator keeps control for key_hold_s)
    + / -                         faster / slower (steps of 25 %)
    ?                             print these keys
"""
from __future__ import annotations

import os
import select
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from lamp_ros.teleop.device import DeviceInput, DeviceUnavailable

HELP = __doc__.split('\n\n', 2)[2].rstrip()

MOTION_KEYS: dict[str, tuple[int, float]] = {
    'w': (0, 1.0), 'up': (0, 1.0), 's': (0, -1.0), 'down': (0, -1.0),
    'a': (1, 1.0), 'left': (1, 1.0), 'd': (1, -1.0), 'right': (1, -1.0),
    'r': (2, 1.0), 'pageup': (2, 1.0), 'f': (2, -1.0), 'pagedown': (2, -1.0),
}
GRIPPER_KEYS = {'o': 'open', 'c': 'close'}
HALT_KEY = ' '
FASTER_KEYS, SLOWER_KEYS = ('+', '='), ('-', '_')
LEVELS = (0.25, 0.5, 0.75, 1.0)

# escape sequences of the keys we use (xterm/VT100 normal and application cursor modes)
_SEQUENCES = {'\x1b[A': 'up', '\x1b[B': 'down', '\x1b[C': 'right', '\x1b[D': 'left',
              '\x1bOA': 'up', '\x1bOB': 'down', '\x1bOC': 'right', '\x1bOD': 'left',
              '\x1b[5~': 'pageup', '\x1b[6~': 'pagedown'}


@dataclass(frozen=True)
class KeyboardConfig:
    key_hold_s: float = 0.5          # one press moves this long: longer than a typical auto-repeat delay
    repeat_hold_s: float = 0.2       # while a key auto-repeats, motion stops this soon after the last repeat
    repeat_gap_s: float = 0.12       # presses of one key closer than this are auto-repeat

    def __post_init__(self) -> None:
        if not 0 < self.repeat_hold_s <= self.key_hold_s:
            raise ValueError(f'need 0 < repeat_hold_s <= key_hold_s, got {self.repeat_hold_s}, {self.key_hold_s}')
        if not 0 < self.repeat_gap_s:
            raise ValueError(f'repeat_gap_s must be > 0, got {self.repeat_gap_s}')


class KeyTokenizer:
    """Terminal bytes -> key names ('w', 'up', 'pageup', ' ', ...); other escape sequences are dropped whole,
    so an unknown function key never reads as letters."""

    def __init__(self) -> None:
        self._pending = ''

    def feed(self, text: str) -> list[str]:
        data, self._pending = self._pending + text, ''
        keys, i = [], 0
        while i < len(data):
            if data[i] != '\x1b':
                keys.append(data[i])
                i += 1
                continue
            end = _sequence_end(data, i)
            if end is None:                      # incomplete: wait for the rest
                self._pending = data[i:]
                break
            name = _SEQUENCES.get(data[i:end])
            if name is not None:
                keys.append(name)
            i = end
        return keys


def _sequence_end(data: str, start: int) -> int | None:
    """Index just past the escape sequence starting at data[start] (ESC [ ... final, ESC O x, ESC x)."""
    if start + 1 >= len(data):
        return None
    kind = data[start + 1]
    if kind == 'O':
        return start + 3 if start + 2 < len(data) else None
    if kind != '[':
        return start + 2
    for j in range(start + 2, len(data)):
        if '\x40' <= data[j] <= '\x7e':
            return j + 1
    return None


class KeyboardMapper:
    """Key presses with their times -> DeviceInput. ROS-free and terminal-free, so it is tested directly."""

    def __init__(self, config: KeyboardConfig = KeyboardConfig()) -> None:
        self.config = config
        self.level = LEVELS[-1]
        self._direction = np.zeros(3)
        self._until = np.full(3, -np.inf)
        self._engaged_until = -np.inf
        self._last_press: dict[str, float] = {}
        self._gripper: str | None = None

    def on_key(self, key: str, t: float) -> None:
        name = key.lower()                          # Caps Lock does not change what a key does
        if name in MOTION_KEYS:
            axis, sign = MOTION_KEYS[name]
            repeating = t - self._last_press.get(name, -np.inf) <= self.config.repeat_gap_s
            self._last_press[name] = t
            self._direction[axis] = sign
            self._until[axis] = t + (self.config.repeat_hold_s if repeating else self.config.key_hold_s)
        elif name in GRIPPER_KEYS:
            self._gripper = GRIPPER_KEYS[name]
            self._engaged_until = t + self.config.key_hold_s
        elif key == HALT_KEY:
            self._until[:] = -np.inf
            self._engaged_until = t + self.config.key_hold_s
        elif key in FASTER_KEYS or key in SLOWER_KEYS:
            i = LEVELS.index(self.level) + (1 if key in FASTER_KEYS else -1)
            self.level = LEVELS[min(max(i, 0), len(LEVELS) - 1)]

    def read(self, now: float) -> DeviceInput:
        active = now < self._until
        motion = np.where(active, self._direction * self.level, 0.0)
        engaged = bool(active.any()) or now < self._engaged_until
        gripper, self._gripper = self._gripper, None
        return DeviceInput(motion, engaged, gripper if engaged else None)


class TerminalKeyboard:
    """Reads keys from the terminal on stdin (cbreak mode: no echo, Ctrl-C still stops the node) in a thread,
    so each key keeps its own arrival time; restores the terminal on close."""

    name = 'keyboard'

    def __init__(self, config: KeyboardConfig, stream: TextIO | None = None, out: TextIO | None = None) -> None:
        stream = sys.stdin if stream is None else stream
        self._out = sys.stdout if out is None else out
        if not stream.isatty():
            raise DeviceUnavailable('keyboard teleop reads keys from the terminal it runs in, and its stdin is not a '
                                    'terminal: run `lamp-ros teleop --device keyboard` in a terminal of its own')
        self._fd = stream.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self.mapper = KeyboardMapper(config)
        self._tokenizer = KeyTokenizer()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='teleop-keyboard', daemon=True)
        self._thread.start()
        self._print(f'keyboard teleop: keys go to the robot while this terminal has focus\n{HELP}\n')

    def _print(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            data = os.read(self._fd, 64)
            if not data:                         # the terminal went away
                return
            t = time.monotonic()
            for key in self._tokenizer.feed(data.decode(errors='replace')):
                if key == '?':
                    self._print(HELP + '\n')
                with self._lock:
                    self.mapper.on_key(key, t)

    def read(self, now: float) -> DeviceInput:
        with self._lock:
            return self.mapper.read(now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


def open_device(config: KeyboardConfig) -> TerminalKeyboard:
    return TerminalKeyboard(config)
