"""Checking images that arrive from the outside world before anything downstream trusts them."""
from __future__ import annotations

import cv2
import numpy as np

from lamp_ros.contract import IMAGE_ENCODING


class ImageRejected(ValueError):
    """An image that must not reach the policy; the message is the reason, fit for a log line, and `code` its
    kind (one log line per kind: lamp_ros.core.fault_log)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def decode_rgb8(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """View a raw rgb8 buffer as (H, W, 3) uint8 without copying, or say exactly why it can't be."""
    if encoding != IMAGE_ENCODING:
        raise ImageRejected('encoding', f"encoding is '{encoding}', expected '{IMAGE_ENCODING}'")
    if height <= 0 or width <= 0:
        raise ImageRejected('empty', f'empty image ({width}x{height})')
    row = width * 3
    if step < row:
        raise ImageRejected('step', f'step {step} is smaller than width*3 = {row}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageRejected('data_size', f'data has {buf.size} bytes, header says {height} rows x {step} bytes '
                                         f'= {step * height}')
    image = buf.reshape(height, step)[:, :row].reshape(height, width, 3)
    return image


def fit_to_size(image: np.ndarray, height: int, width: int, resize: bool) -> np.ndarray:
    """Return the image at (height, width): as is, or downscaled when allowed and the aspect ratio matches.
    Never upscaled: a smaller picture holds less than the model was trained on, so acting on it is guessing."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if h < height or w < width:
        raise ImageRejected('too_small', f'size {w}x{h} is smaller than the expected {width}x{height} (never upscaled)')
    if not resize:
        raise ImageRejected('size', f'size {w}x{h}, expected {width}x{height} (resizing disabled)')
    if abs(w / h - width / height) > 0.01:
        raise ImageRejected('aspect_ratio', f'aspect ratio of {w}x{h} differs from the expected {width}x{height}; '
                            'crop it at the camera (camera crop parameter)')
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
