"""FrameSource: real video files through OpenCV, and a fake USB device (named as such) that unplugs."""
import cv2
import numpy as np
import pytest

from lamp_ros.core.frame_source import CameraConfig, FrameSource, to_output


def write_video(path, n=10, size=(320, 240)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 30, size)
    assert w.isOpened()
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, :, 2] = 200                                   # red in BGR
        frame[:10, :10] = (i * 20) % 256
        w.write(frame)
    w.release()


class FakeUsbCamera:
    """FAKE of a USB camera (none exists on a CI machine): delivers frames until unplugged."""

    def __init__(self, plugged: list[bool]):
        self.plugged = plugged

    def isOpened(self):
        return self.plugged[0]

    def grab(self):
        return self.plugged[0]

    def retrieve(self):
        return True, np.full((480, 640, 3), 50, np.uint8)

    def release(self):
        pass

    def set(self, prop, value):
        return True


def test_file_frames_are_rgb_cropped_and_resized(tmp_path):
    path = tmp_path / 'clip.avi'
    write_video(path)
    src = FrameSource(CameraConfig(source=str(path), width=64, height=64), log=lambda m: None)
    frame, stamp = src.read(stamp=lambda: 'T')
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and stamp == 'T'
    assert frame[32, 32, 0] > 150 and frame[32, 32, 2] < 50    # red arrives as R in RGB


def test_file_loops_and_non_loop_ends(tmp_path):
    path = tmp_path / 'clip.avi'
    write_video(path, n=5)
    looping = FrameSource(CameraConfig(source=str(path)), log=lambda m: None)
    assert sum(looping.read(lambda: 0) is not None for _ in range(12)) >= 10
    once = FrameSource(CameraConfig(source=str(path), loop=False), log=lambda m: None)
    frames = [once.read(lambda: 0) for _ in range(8)]
    assert sum(f is not None for f in frames) == 5 and once.finished


def test_reconnects_after_device_drop():
    plugged = [True]
    now = [0.0]
    logs = []
    src = FrameSource(CameraConfig(source='0', reconnect_interval_s=1.0), opener=lambda cfg: FakeUsbCamera(plugged),
                      log=logs.append, clock=lambda: now[0])
    assert src.read(lambda: 0) is not None
    plugged[0] = False
    assert src.read(lambda: 0) is None and not src.connected
    assert any('lost device' in m for m in logs)
    for t in (0.2, 0.5, 1.5, 2.0, 2.6):                         # unplugged: attempts at most once a second
        now[0] = t
        assert src.read(lambda: 0) is None
    assert src.failed_opens == 2
    plugged[0] = True
    now[0] = 3.7
    assert src.read(lambda: 0) is not None and src.connected


def test_missing_file_is_reported_not_raised(tmp_path):
    logs = []
    src = FrameSource(CameraConfig(source=str(tmp_path / 'nope.avi')), log=logs.append)
    assert src.read(lambda: 0) is None
    assert 'cannot open file' in logs[0]


def test_to_output_crops_center():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 50:150] = 255                                        # the central square is white
    out = to_output(frame, CameraConfig(width=10, height=10))
    assert out.shape == (10, 10, 3) and out.min() == 255
    stretched = to_output(frame, CameraConfig(width=10, height=10, crop='none'))
    assert stretched.min() == 0


def test_config_validation():
    with pytest.raises(ValueError):
        CameraConfig(width=0)
    with pytest.raises(ValueError):
        CameraConfig(crop='zoom')
    assert CameraConfig(source='rtsp://cam/1').kind == 'stream'
