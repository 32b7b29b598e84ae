"""What the dashboard plots and shows that no single status holds (ROS-free): the episodes so far (return,
success, interventions, steps) from episode/status and the reward stream, and the newest camera frames as JPEG
with their capture stamps (encoded once per frame, whatever the number of pages watching)."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

MAX_EPISODES = 500
JPEG_QUALITY = 80


@dataclass(frozen=True)
class EpisodeRow:
    episode: int
    steps: int
    success: bool
    interventions: int
    reward: float                  # sum of the rewards received while it ran
    instruction: str


class EpisodeHistory:
    def __init__(self) -> None:
        self.rows: deque[EpisodeRow] = deque(maxlen=MAX_EPISODES)
        self._running: dict[str, Any] | None = None
        self._reward = 0.0

    def on_status(self, status: dict[str, Any]) -> None:
        """episode/status: a running episode that stops (or is replaced) becomes a row."""
        running = self._running
        if running is not None and (status.get('state') != 'running' or status.get('episode') != running['episode']):
            final = status if status.get('episode') == running['episode'] else running
            self.rows.append(EpisodeRow(int(final.get('episode', 0)), int(final.get('step', 0)),
                                        bool(final.get('success')), int(final.get('interventions', 0)),
                                        round(self._reward, 4), str(final.get('instruction', ''))))
            self._running = None
        if status.get('state') == 'running':
            if self._running is None:
                self._reward = 0.0
            self._running = dict(status)

    def on_reward(self, reward: float) -> None:
        if self._running is not None and np.isfinite(reward):
            self._reward += float(reward)

    def as_list(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]


class LatestFrames:
    """Thread-safe newest frame per camera; JPEG made on first request after it changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: dict[str, tuple[int, float, np.ndarray | None, bytes | None]] = {}

    def put(self, camera: str, rgb: np.ndarray, stamp_s: float) -> None:
        with self._lock:
            serial = self._frames.get(camera, (0,))[0] + 1
            self._frames[camera] = (serial, stamp_s, rgb, None)

    def get(self, camera: str) -> tuple[int, float, bytes] | None:
        """(serial, capture stamp in s, JPEG bytes) of the newest frame, or None before the first."""
        with self._lock:
            entry = self._frames.get(camera)
        if entry is None:
            return None
        serial, stamp, rgb, jpeg = entry
        if jpeg is None:
            ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                return None
            jpeg = encoded.tobytes()
            with self._lock:
                if self._frames.get(camera, (None,))[0] == serial:
                    self._frames[camera] = (serial, stamp, None, jpeg)
        return serial, stamp, jpeg
