"""Camera calibration for camera/camera_info: read from the YAML that ROS's camera_calibration writes (and
camera_info_manager reads), then fitted to the frames the camera node publishes. Those are cropped and resized
(core/frame_source.py), so the intrinsics move with them: the principal point by the crop, focal lengths and
principal point by the scale. The calibration must be of the capture's resolution; it says so when not."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from lamp_ros.core.frame_source import CameraConfig, crop_box


class CalibrationError(ValueError):
    """A calibration file that cannot describe the camera's frames; the message names the file and why."""


@dataclass(frozen=True)
class Calibration:
    width: int
    height: int
    k: np.ndarray                  # [3, 3] intrinsics
    d: tuple[float, ...]           # distortion coefficients
    distortion_model: str
    r: np.ndarray                  # [3, 3] rectification
    p: np.ndarray                  # [3, 4] projection
    camera_name: str = ''


def load_calibration(path: Path) -> Calibration:
    """The file's calibration; CalibrationError naming what is missing or malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CalibrationError(f'calibration {path}: unreadable ({e})') from None
    if not isinstance(data, dict):
        raise CalibrationError(f'calibration {path}: not a camera_calibration YAML mapping')
    try:
        return Calibration(width=int(data['image_width']), height=int(data['image_height']),
                           k=_matrix(data['camera_matrix'], (3, 3)),
                           d=tuple(float(v) for v in data['distortion_coefficients']['data']),
                           distortion_model=str(data.get('distortion_model', 'plumb_bob')),
                           r=_matrix(data.get('rectification_matrix', {'data': np.eye(3).ravel().tolist()}), (3, 3)),
                           p=_matrix(data['projection_matrix'], (3, 4)), camera_name=str(data.get('camera_name', '')))
    except (KeyError, TypeError, ValueError) as e:
        raise CalibrationError(f'calibration {path}: {type(e).__name__} {e} (expected image_width, image_height, '
                               'camera_matrix, distortion_coefficients, projection_matrix)') from None


def _matrix(entry: dict, shape: tuple[int, int]) -> np.ndarray:
    values = np.asarray(entry['data'], float)
    if values.size != shape[0] * shape[1]:
        raise ValueError(f'{values.size} values where {shape[0]}x{shape[1]} are needed')
    return values.reshape(shape)


def fitted(calibration: Calibration, capture_width: int, capture_height: int, config: CameraConfig) -> Calibration:
    """The calibration of the published frames, from that of capture_width x capture_height frames."""
    if (calibration.width, calibration.height) != (capture_width, capture_height):
        raise CalibrationError(f'the calibration is of {calibration.width}x{calibration.height} frames, the camera '
                               f'delivers {capture_width}x{capture_height}: calibrate at the capture resolution')
    x0, y0, cw, ch = crop_box(capture_width, capture_height, config)
    sx, sy = config.width / cw, config.height / ch
    scale = np.diag([sx, sy, 1.0])
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    move = scale @ shift                              # pixel (u, v) of the capture -> of the published frame
    return replace(calibration, width=config.width, height=config.height, k=move @ calibration.k,
                   p=move @ calibration.p)
