"""camera node over real topics, fed by a video file through OpenCV (no USB camera on a CI machine)."""
import os
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from lamp_ros import contract as c
from lamp_ros.contract import Qos, Topic
from lamp_ros.ros.convert import image_array, to_sec
from tests.test_frame_source import write_video

DRIVER = Topic('/usb_cam/image_raw/compressed', 'sensor_msgs/CompressedImage', Qos.SENSOR, "another driver's")


def test_publishes_stamped_rgb_frames_at_rate_and_recovers_from_a_lost_source(nodes, probe, tmp_path):
    video = tmp_path / 'clip.avi'
    write_video(video, n=15)
    nodes.start('camera', {'source': str(video), 'width': 64, 'height': 48, 'rate_hz': 20.0,
                           'reconnect_interval_s': 0.2})
    images = probe.record(c.CAMERA_IMAGE)
    assert probe.wait_for(lambda: len(images) >= 5, 20), nodes.log('camera')
    start = len(images)
    t0 = time.monotonic()
    probe.spin_for(2.0)
    rate = (len(images) - start) / (time.monotonic() - t0)
    assert 16 <= rate <= 24, f'{rate:.1f} Hz, expected 20 +- 20%'
    msg = images[-1][1]
    assert (msg.encoding, msg.width, msg.height, msg.header.frame_id) == ('rgb8', 64, 48, 'camera_front')
    assert image_array(msg).shape == (48, 64, 3)
    stamps = [to_sec(m.header.stamp) for _, m in images]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), 'stamps must increase'
    now = probe.node.get_clock().now().nanoseconds * 1e-9
    assert 0 <= now - stamps[-1] < 0.5

    os.rename(video, tmp_path / 'away.avi')                  # the source disappears mid-run
    probe.spin_for(1.5)
    n_gone = len(images)
    probe.spin_for(0.5)
    assert len(images) == n_gone, 'no frames while the source is gone'
    assert nodes.alive('camera')
    os.rename(tmp_path / 'away.avi', video)
    assert probe.wait_for(lambda: len(images) > n_gone + 5, 10), 'did not reconnect: ' + nodes.log('camera')
    assert 'cannot open file' in nodes.log('camera')


def test_camera_info_comes_with_every_image_fitted_to_it(nodes, probe, tmp_path):
    from tests.test_calibration import write_calibration
    video = tmp_path / 'clip.avi'
    write_video(video, n=15, size=(640, 480))
    nodes.start('camera', {'source': str(video), 'width': 64, 'height': 64, 'rate_hz': 20.0,
                           'calibration_file': str(write_calibration(tmp_path / 'front.yaml'))})
    images, infos = probe.record(c.CAMERA_IMAGE), probe.record(c.CAMERA_INFO)
    assert probe.wait_for(lambda: len(infos) >= 5 and len(images) >= 5, 20), nodes.log('camera')
    info = infos[-1][1]
    s = 64 / 480
    assert (info.width, info.height, info.header.frame_id) == (64, 64, 'camera_front')
    assert np.allclose(info.k, [600 * s, 0, 250 * s, 0, 610 * s, 250 * s, 0, 0, 1])
    # the two subscriptions may start a frame apart: compare from the first image this probe received
    image_stamps = {to_sec(m.header.stamp) for _, m in images}
    paired = [m for _, m in infos[:-1] if to_sec(m.header.stamp) >= min(image_stamps)]
    assert len(paired) >= 3 and all(to_sec(m.header.stamp) in image_stamps for m in paired), \
        'each info has its image\'s stamp'


def test_frames_from_another_drivers_compressed_topic_keep_their_stamps(nodes, probe):
    nodes.start('camera', {'compressed_topic': '/usb_cam/image_raw/compressed', 'width': 64, 'height': 48,
                           'rate_hz': 20.0})
    images = probe.record(c.CAMERA_IMAGE)
    bgr = np.zeros((240, 320, 3), np.uint8)
    bgr[:, :, 2] = 200                                                   # red, as OpenCV orders it
    jpeg = cv2.imencode('.jpg', bgr)[1].tobytes()
    sent, due = [], [0.0]

    def publish():                                                       # a 10 Hz driver
        if time.monotonic() < due[0]:
            return
        due[0] = time.monotonic() + 0.1
        msg = CompressedImage(format='jpeg', data=jpeg)
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        sent.append(to_sec(msg.header.stamp))
        probe.publish(DRIVER, msg)

    assert probe.wait_for(lambda: len(images) >= 3, 20, publish), nodes.log('camera')
    msg = images[-1][1]
    assert (msg.width, msg.height, msg.encoding) == (64, 48, 'rgb8') and to_sec(msg.header.stamp) in sent
    assert image_array(msg)[24, 32].tolist() == pytest.approx([200, 0, 0], abs=8)
    probe.spin_for(0.2)                                                  # a period after the last good frame
    broken = CompressedImage(format='jpeg', data=b'not a jpeg')
    broken.header.stamp = probe.node.get_clock().now().to_msg()
    probe.publish(DRIVER, broken)
    assert probe.wait_for(lambda: 'do not decode' in nodes.log('camera'), 5), nodes.log('camera')
    assert nodes.alive('camera')
