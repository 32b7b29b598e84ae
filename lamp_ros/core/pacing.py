"""When the policy acts: on each fresh camera image, no faster than the control rate."""
from __future__ import annotations


class ImagePacer:
    """Acting on image arrival keeps camera-to-command latency at the compute time, instead of up to a
    whole period when a timer samples the latest image. The camera should run at the control rate or a
    multiple of it; an image arriving sooner than 3/4 of a period after the last action is skipped."""

    def __init__(self, control_rate_hz: float, min_fraction: float = 0.75) -> None:
        if control_rate_hz <= 0:
            raise ValueError(f'control_rate_hz must be > 0, got {control_rate_hz}')
        self.min_interval_s = min_fraction / control_rate_hz
        self._last: float | None = None

    def due(self, t: float) -> bool:
        return self._last is None or t - self._last >= self.min_interval_s

    def acted(self, t: float) -> None:
        self._last = t
