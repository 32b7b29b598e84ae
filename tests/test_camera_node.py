"""camera node over real topics, fed by a video file through OpenCV (no USB camera on a CI machine)."""
import os
import time

from lamp_ros import contract as c
from lamp_ros.ros.convert import image_array, to_sec
from tests.test_frame_source import write_video


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
