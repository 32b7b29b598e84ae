"""When the policy acts: on each fresh camera image, no faster than the control rate. The same grid paces the
camera node's frames and the safety node's commands."""
from __future__ import annotations

import math


class ImagePacer:
    """Acting on image arrival keeps camera-to-command latency at the compute time, instead of up to a
    whole period when a timer samples the latest image. The camera should run at the control rate or a
    multiple of it.

    The ticks sit on a fixed grid (one per period), so the average rate is the control rate whatever the
    camera's jitter: an image is used when it arrives no more than `1 - min_fraction` of a period before the
    next tick. A late image does not shift the grid; after a gap of more than a period the grid restarts."""

    def __init__(self, control_rate_hz: float, min_fraction: float = 0.75) -> None:
        if control_rate_hz <= 0:
            raise ValueError(f'control_rate_hz must be > 0, got {control_rate_hz}')
        if not 0.0 < min_fraction <= 1.0:
            raise ValueError(f'min_fraction must be in (0, 1], got {min_fraction}')
        self.period_s = 1.0 / control_rate_hz
        self.early_s = (1.0 - min_fraction) * self.period_s
        self._next: float | None = None

    def due(self, t: float) -> bool:
        return self._next is None or t >= self._next - self.early_s

    @property
    def next_due(self) -> float:
        """The earliest time `due` will say yes (-inf before the first action)."""
        return -math.inf if self._next is None else self._next - self.early_s

    def acted(self, t: float) -> None:
        if self._next is None or t > self._next + self.period_s:
            self._next = t + self.period_s            # first action, or after a gap: restart the grid
        else:
            self._next += self.period_s
