"""Camera calibration for camera/camera_info: the camera_calibration YAML read, and its intrinsics moved with the
camera node's crop and resize; a file that cannot describe the frames is refused with the reason."""
import numpy as np
import pytest
import yaml

from lamp_ros.core.calibration import CalibrationError, fitted, load_calibration
from lamp_ros.core.frame_source import CameraConfig

K = [600.0, 0.0, 330.0, 0.0, 610.0, 250.0, 0.0, 0.0, 1.0]
P = [600.0, 0.0, 330.0, 0.0, 0.0, 610.0, 250.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def write_calibration(path, **changes):
    data = {'image_width': 640, 'image_height': 480, 'camera_name': 'front',
            'camera_matrix': {'rows': 3, 'cols': 3, 'data': K}, 'distortion_model': 'plumb_bob',
            'distortion_coefficients': {'rows': 1, 'cols': 5, 'data': [0.1, -0.2, 0.0, 0.0, 0.0]},
            'rectification_matrix': {'rows': 3, 'cols': 3, 'data': np.eye(3).ravel().tolist()},
            'projection_matrix': {'rows': 3, 'cols': 4, 'data': P}, **changes}
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return path


def test_the_intrinsics_follow_the_centre_crop_and_the_resize(tmp_path):
    calibration = load_calibration(write_calibration(tmp_path / 'front.yaml'))
    out = fitted(calibration, 640, 480, CameraConfig(width=128, height=128))     # crop 480x480 at x 80, then /3.75
    s = 128 / 480
    assert (out.width, out.height) == (128, 128) and out.d == (0.1, -0.2, 0.0, 0.0, 0.0)
    assert np.allclose(out.k, [[600 * s, 0, (330 - 80) * s], [0, 610 * s, 250 * s], [0, 0, 1]])
    assert np.allclose(out.p[:, :3], out.k)
    point = np.array([400.0, 300.0, 1.0])                   # a capture pixel lands where the crop and resize put it
    assert np.allclose(np.linalg.inv(out.k) @ [(400 - 80) * s, 300 * s, 1], np.linalg.inv(calibration.k) @ point)
    stretched = fitted(calibration, 640, 480, CameraConfig(width=64, height=64, crop='none'))
    assert np.allclose(stretched.k[0, 0], 600 * 0.1) and np.allclose(stretched.k[1, 1], 610 * 64 / 480)


def test_a_calibration_that_cannot_describe_the_frames_is_refused(tmp_path):
    calibration = load_calibration(write_calibration(tmp_path / 'front.yaml'))
    with pytest.raises(CalibrationError, match='of 640x480 frames, the camera delivers 1280x720'):
        fitted(calibration, 1280, 720, CameraConfig())
    with pytest.raises(CalibrationError, match='camera_matrix'):
        load_calibration(write_calibration(tmp_path / 'bad.yaml', camera_matrix=None))
    with pytest.raises(CalibrationError, match='4 values where 3x3'):
        load_calibration(write_calibration(tmp_path / 'short.yaml', camera_matrix={'data': [1, 2, 3, 4]}))
    with pytest.raises(CalibrationError, match='unreadable'):
        load_calibration(tmp_path / 'missing.yaml')
