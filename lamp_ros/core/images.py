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


CHANNELS = {IMAGE_ENCODING: 3, 'bgr8': 3, 'mono8': 1}
"""Encodings a camera may publish (usb_cam and realsense2_camera use rgb8 or bgr8; mono8 for grey cameras)."""


def decode_image(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """(H, W, 3) uint8 rgb of a raw image buffer: a view for rgb8, converted for bgr8 and mono8; or say exactly
    why it can't be."""
    channels = CHANNELS.get(encoding)
    if channels is None:
        raise ImageRejected('encoding', f"encoding is '{encoding}', expected one of {', '.join(CHANNELS)}")
    if height <= 0 or width <= 0:
        raise ImageRejected('empty', f'empty image ({width}x{height})')
    row = width * channels
    if step < row:
        raise ImageRejected('step', f'step {step} is smaller than width*{channels} = {row}')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageRejected('data_size', f'data has {buf.size} bytes, header says {height} rows x {step} bytes '
                                         f'= {step * height}')
    image = buf.reshape(height, step)[:, :row].reshape(height, width, channels)
    if encoding == 'bgr8':
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if encoding == 'mono8':
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return image


def decode_compressed(image_format: str, data) -> np.ndarray:
    """BGR (H, W, 3) uint8 of a compressed image (sensor_msgs/CompressedImage: 'jpeg', 'png', or image_transport's
    'rgb8; jpeg compressed bgr8'); ImageRejected with the reason if it is none of those or does not decode."""
    kind = image_format.lower()
    if not any(name in kind for name in ('jpeg', 'jpg', 'png')):
        raise ImageRejected('format', f"compressed format '{image_format}', expected jpeg or png")
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    frame = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if frame is None:
        raise ImageRejected('decode', f'{len(buf)} bytes of {image_format} that do not decode')
    return frame


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
