"""The workspace box as an invariant: the end effector stays inside it whatever the timing of commands.

An arm driver keeps executing a twist until the next one arrives or, at most, for `max_hold_s` (its
command timeout), and commands come late under load. So one period ahead is not enough: a velocity is
allowed only if

  * held for the whole `max_hold_s` from the worst-case current position, it still ends inside the box, and
  * the arm can be braked to rest before the wall within the acceleration limit even when later commands
    come late (`speed_toward_wall`),

where the worst-case current position is the last measured EE position plus the most the twists
published since could have moved it (`MotionLog`, which also lets each twist run DELIVERY_LATENCY_S into
the next one's time), per axis. A measured position outside the box is a
violation: on that axis the arm is driven back inward, never further out.
"""
from __future__ import annotations

from collections import deque

import numpy as np

AXES = 'xyz'
DELIVERY_LATENCY_S = 0.005     # a twist may reach the driver this late, so the one before runs that much longer


class MotionLog:
    """The twists published lately (time, velocity): where can the arm be now, given a measured position?"""

    def __init__(self, max_hold_s: float, keep_s: float, latency_s: float = DELIVERY_LATENCY_S) -> None:
        self.max_hold_s = max_hold_s
        self.keep_s = keep_s
        self.latency_s = latency_s
        self._entries: deque[tuple[float, np.ndarray]] = deque()

    def add(self, t: float, velocity: np.ndarray) -> None:
        self._entries.append((t, velocity))
        while len(self._entries) > 1 and self._entries[1][0] < t - self.keep_s:
            self._entries.popleft()        # replaced before the oldest time anyone asks about

    def bounds(self, position: np.ndarray, measured_t: float, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest position per axis when a twist published at t reaches the arm, for a position
        measured at measured_t: each twist runs from its publication until the next one arrives (up to
        latency_s after it is published) or max_hold_s, whichever is first, or stops any time before."""
        lo, hi = position.copy(), position.copy()
        entries = list(self._entries)
        for i, (start, v) in enumerate(entries):
            replaced = entries[i + 1][0] if i + 1 < len(entries) else t
            end = min(replaced + self.latency_s, start + self.max_hold_s)
            overlap = end - max(start, measured_t)
            if overlap > 0:
                lo += np.minimum(v * overlap, 0.0)
                hi += np.maximum(v * overlap, 0.0)
        return lo, hi


def speed_toward_wall(room: np.ndarray, hold_s: float, decel: float) -> np.ndarray:
    """Largest speed toward a wall `room` metres away (per axis) that keeps the arm inside even if this twist
    is held for `hold_s`, and that later commands can brake within `decel` (m/s^2 per axis) however late they
    come. The braking curve plans with decel / 2: between commands the velocity is constant, so a command late
    by dt needs the room of dt at the old speed before it can take `decel * dt` off; with half the deceleration
    in the plan that is always there (tests/test_safety_invariants.py checks it numerically)."""
    a = decel / 2.0
    room = np.maximum(room, 0.0)
    linear = room / hold_s                                       # hold_s at this speed ends at the wall ...
    braking = np.sqrt(np.maximum(2.0 * a * room - (a * hold_s) ** 2, 0.0))   # ... and braking at a from it does
    return np.where(room <= a * hold_s ** 2, linear, braking)


class WorkspaceGuard:
    """Per-axis velocity bounds that keep the arm in the box [lo, hi] (see the module docstring)."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, max_hold_s: float, axis_decel: float,
                 recovery_speed: float, control_rate_hz: float) -> None:
        self.lo, self.hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        self.max_hold_s = max_hold_s
        self.axis_decel = axis_decel
        self.recovery_speed = recovery_speed
        self.control_rate_hz = control_rate_hz

    def velocity_bounds(self, measured: np.ndarray, p_lo: np.ndarray, p_hi: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(vmin, vmax, axes found outside). Inside: toward each wall at most speed_toward_wall of the room left
        in the worst case. Outside (measured): back inward at a speed that returns within about a period."""
        vmax = speed_toward_wall(self.hi - p_hi, self.max_hold_s, self.axis_decel)
        vmin = -speed_toward_wall(p_lo - self.lo, self.max_hold_s, self.axis_decel)
        above, below = measured > self.hi, measured < self.lo
        vmax = np.where(above, -self._inward(measured - self.hi), vmax)
        vmin = np.where(below, self._inward(self.lo - measured), vmin)
        conflict = vmin > vmax                    # a box narrower than the uncertainty: stand still on that axis
        vmin, vmax = np.where(conflict, 0.0, vmin), np.where(conflict, 0.0, vmax)
        outside = [f'{AXES[i]}={measured[i]:.4f} m' for i in np.flatnonzero(above | below)]
        return vmin, vmax, outside

    def _inward(self, excess: np.ndarray) -> np.ndarray:
        return np.minimum(excess * self.control_rate_hz, self.recovery_speed)

    def describe(self) -> str:
        return f'{np.round(self.lo, 4).tolist()}..{np.round(self.hi, 4).tolist()}'
