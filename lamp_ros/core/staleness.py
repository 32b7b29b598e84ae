"""Stale-input limits that fit each input: derived from its own measured arrival intervals, with a margin.

One fixed limit (1.5 control periods) for every input has to suit the slowest, most jittery one, so a
500 Hz pose that died went unnoticed for 150 ms. A limit of `margin` times the p99 of the input's recent
intervals follows the input's real rhythm (a 500 Hz pose gets a tight limit), kept between
`min_s` and `max_s`; `max_s` keeps a dead input's stop within 2 control periods (the safety node's default
ceiling is the old fixed limit, so no input is watched more loosely than before). Until `warmup` intervals
are seen the limit is `initial_s`.
"""
from __future__ import annotations

from collections import deque

import numpy as np


class InputClock:
    def __init__(self, initial_s: float, min_s: float, max_s: float, margin: float, keep: int = 100,
                 warmup: int = 10) -> None:
        if not 0 < min_s <= max_s or margin < 1.0:
            raise ValueError(f'need 0 < min_s <= max_s and margin >= 1, got {min_s}, {max_s}, {margin}')
        self.initial_s, self.min_s, self.max_s, self.margin, self.warmup = initial_s, min_s, max_s, margin, warmup
        self.last_t: float | None = None
        self._intervals: deque[float] = deque(maxlen=keep)
        self.limit_s = min(max(initial_s, min_s), max_s)

    def arrived(self, t: float) -> None:
        if self.last_t is not None and t > self.last_t:
            self._intervals.append(t - self.last_t)
            if len(self._intervals) >= self.warmup:
                p99 = float(np.percentile(self._intervals, 99))
                self.limit_s = min(max(self.margin * p99, self.min_s), self.max_s)
        self.last_t = t if self.last_t is None else max(self.last_t, t)

    def age(self, t: float) -> float | None:
        """Seconds since the last arrival (None before the first)."""
        return None if self.last_t is None else t - self.last_t
