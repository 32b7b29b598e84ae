"""Frames from OpenCV VideoCapture (USB device index, video file or stream URL) that survive a dropped
device: any failure releases the capture and the next `read` tries to reconnect, at most once per
reconnect interval. Frames come out RGB, cropped to the output aspect ratio and resized."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

import cv2
import numpy as np


class Capture(Protocol):
    """The part of cv2.VideoCapture we use (so a named fake can stand in for a USB camera in tests)."""

    def isOpened(self) -> bool: ...
    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, np.ndarray]: ...
    def release(self) -> None: ...
    def set(self, prop: int, value: float) -> bool: ...


@dataclass(frozen=True)
class CameraConfig:
    source: str = '0'                    # device index ('0'), video file path, or URL (rtsp://, http://)
    width: int = 128
    height: int = 128
    rate_hz: float = 10.0
    crop: str = 'center'                 # 'center': crop to the output aspect ratio; 'none': stretch
    loop: bool = True                    # video files: start again at the end
    reconnect_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.rate_hz <= 0 or self.reconnect_interval_s < 0:
            raise ValueError(f'invalid camera config {self}')
        if self.crop not in ('center', 'none'):
            raise ValueError(f"crop must be 'center' or 'none', got {self.crop!r}")

    @property
    def kind(self) -> str:
        if self.source.isdigit():
            return 'device'
        return 'stream' if '://' in self.source else 'file'


def open_capture(config: CameraConfig) -> Capture:
    if config.kind == 'device':
        cap = cv2.VideoCapture(int(config.source))
        cap.set(cv2.CAP_PROP_FPS, config.rate_hz)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)          # keep latency low: don't queue stale frames
        return cap
    return cv2.VideoCapture(config.source)


def crop_box(width: int, height: int, config: CameraConfig) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the part of a width x height frame that becomes the output (all of it with crop
    'none'): the same box crops the frame and moves the calibration's principal point (core/calibration.py)."""
    if config.crop == 'center':
        target = config.width / config.height
        if width / height > target:
            cw = int(round(height * target))
            return (width - cw) // 2, 0, cw, height
        if width / height < target:
            ch = int(round(width / target))
            return 0, (height - ch) // 2, width, ch
    return 0, 0, width, height


def to_output(frame_bgr: np.ndarray, config: CameraConfig) -> np.ndarray:
    """BGR frame of any size -> RGB (height, width, 3) uint8."""
    if frame_bgr.ndim == 2:
        frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    x0, y0, cw, ch = crop_box(frame_bgr.shape[1], frame_bgr.shape[0], config)
    frame_bgr = frame_bgr[y0:y0 + ch, x0:x0 + cw]
    if frame_bgr.shape[:2] != (config.height, config.width):
        frame_bgr = cv2.resize(frame_bgr, (config.width, config.height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


class FrameSource:
    """Blocking reads of processed frames; reconnects on failure. Not thread-safe: one reader thread."""

    def __init__(self, config: CameraConfig, opener: Callable[[CameraConfig], Capture] = open_capture,
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._opener, self._log, self._clock = opener, log, clock
        self._cap: Capture | None = None
        self._last_attempt = float('-inf')
        self.connected = False
        self.failed_opens = 0
        self.finished = False            # a non-looping video file reached its end
        self.capture_size: tuple[int, int] | None = None     # (width, height) of the last frame as captured
        self._opened_before = False

    def read(self, stamp: Callable[[], object]) -> tuple[np.ndarray, object] | None:
        """One frame and its capture stamp (`stamp()` is called right after the grab), or None when no
        frame could be had now (device lost, reconnect not yet due, end of a non-looping file)."""
        if self.finished or (self._cap is None and not self._connect()):
            return None
        if not self._cap.grab():
            self._lost('no frame (device unplugged, stream dropped or end of file)')
            return None
        captured_at = stamp()
        ok, frame = self._cap.retrieve()
        if not ok or frame is None or frame.size == 0:
            self._lost('frame could not be decoded')
            return None
        self.capture_size = (frame.shape[1], frame.shape[0])
        return to_output(frame, self.config), captured_at

    def _connect(self) -> bool:
        now = self._clock()
        if now - self._last_attempt < self.config.reconnect_interval_s:
            return False
        self._last_attempt = now
        cap = self._opener(self.config)
        if not cap.isOpened():
            cap.release()
            if self.failed_opens == 0:
                self._log(f"camera: cannot open {self.config.kind} '{self.config.source}'; "
                          f'retrying every {self.config.reconnect_interval_s} s')
            self.failed_opens += 1
            return False
        if self.failed_opens or not self._opened_before:       # not at every loop of a video file
            self._log(f"camera: opened {self.config.kind} '{self.config.source}'")
        self._cap, self.connected, self.failed_opens, self._opened_before = cap, True, 0, True
        return True

    def _lost(self, why: str) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap, self.connected = None, False
        if self.config.kind == 'file':
            if self.config.loop:
                self._last_attempt = float('-inf')      # a file that ended restarts at once
            else:
                self.finished = True
                self._log(f"camera: video file '{self.config.source}' ended (loop is off)")
        else:
            self._log(f'camera: lost {self.config.kind} ({why}); reconnecting')

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
