"""policy node over real topics: acts on fresh images, refuses bad bundles and bad images, stays up."""
import json
import shutil
import time

import numpy as np
import pytest
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.ros.convert import action_array, gripper_state_msg, image_msg, pose_msg
from models.bundle import MANIFEST


def feed(probe, image, encoding='rgb8'):
    stamp = probe.node.get_clock().now().to_msg()
    msg = image_msg(image, stamp, 'camera_front')
    msg.encoding = encoding
    probe.publish(c.CAMERA_IMAGE, msg)
    probe.publish(c.EE_POSE, pose_msg(np.array([0.5, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), stamp, 'base'))
    probe.publish(c.GRIPPER_STATE, gripper_state_msg(1.0, stamp))


def status_of(statuses):
    return json.loads(statuses[-1][1].data) if statuses else {}


class Paced:
    def __init__(self, probe, period, image, encoding='rgb8'):
        self.probe, self.period, self.image, self.encoding = probe, period, image, encoding
        self.next = 0.0

    def __call__(self):
        import time
        if time.monotonic() >= self.next:
            self.next = time.monotonic() + self.period
            feed(self.probe, self.image, self.encoding)


def test_acts_at_control_rate_on_fresh_images(nodes, probe, make_bundle):
    nodes.start('policy', {'bundle_path': str(make_bundle(64)), 'control_rate_hz': 10.0})
    actions = probe.record(c.POLICY_ACTION)
    statuses = probe.record(c.POLICY_STATUS)
    image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)   # resized to 64
    step = Paced(probe, 1 / 30, image)                                                 # 30 Hz camera
    # images and robot state flow, but no instruction yet: the policy waits and says for what
    assert probe.wait_for(lambda: status_of(statuses).get('reason') == 'waiting for instruction', 20, step), \
        nodes.log('policy')
    assert not actions
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    assert probe.wait_for(lambda: len(actions) > 3, 10, step), nodes.log('policy')
    n0 = len(actions)
    probe.wait_for(lambda: False, 3.0, step)
    arrivals = np.array([t for t, _ in actions[n0:]])
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert 8.0 <= rate <= 12.0, f'{rate:.1f} Hz, expected 10 +- 20%'
    a = action_array(actions[-1][1])
    assert a.shape == (4,) and np.all(np.abs(a) <= 1)
    s = status_of(statuses)
    assert s['state'] == 'running' and s['model_version'] == 'tiny-test'


def test_a_wrist_camera_bundle_waits_for_the_wrist_image_and_then_acts(nodes, probe, make_bundle):
    nodes.start('policy', {'bundle_path': str(make_bundle(64, cameras=('front', 'wrist')))})
    actions = probe.record(c.POLICY_ACTION)
    statuses = probe.record(c.POLICY_STATUS)
    probe.publish(c.INSTRUCTION, String(data='take the lid off the saucepan'))
    image = np.zeros((64, 64, 3), np.uint8)
    front_only = Paced(probe, 0.1, image)
    assert probe.wait_for(lambda: status_of(statuses).get('reason') == f'waiting for {c.WRIST_CAMERA_IMAGE.name}',
                          20, front_only), nodes.log('policy')
    assert not actions

    def both() -> None:
        if time.monotonic() >= both.next:
            both.next = time.monotonic() + 0.1
            stamp = probe.node.get_clock().now().to_msg()
            probe.publish(c.WRIST_CAMERA_IMAGE, image_msg(np.full((128, 128, 3), 200, np.uint8), stamp, 'camera_wrist'))
            front_only.next = 0.0
            front_only()
    both.next = 0.0
    assert probe.wait_for(lambda: len(actions) > 2, 10, both), nodes.log('policy')
    assert 'from front, wrist' in nodes.log('policy')


def test_rejects_bad_images_and_keeps_running(nodes, probe, make_bundle):
    nodes.start('policy', {'bundle_path': str(make_bundle(64))})
    actions = probe.record(c.POLICY_ACTION)
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    yuv = Paced(probe, 0.1, np.zeros((64, 64, 3), np.uint8), encoding='yuv422')
    probe.wait_for(lambda: "encoding is 'yuv422'" in nodes.log('policy'), 20, yuv)
    wide = Paced(probe, 0.1, np.zeros((48, 64, 3), np.uint8))
    probe.wait_for(lambda: 'aspect ratio' in nodes.log('policy'), 10, wide)
    assert not actions and nodes.alive('policy')
    good = Paced(probe, 0.1, np.zeros((64, 64, 3), np.uint8))
    assert probe.wait_for(lambda: actions, 10, good), 'no action on good images after bad ones'


@pytest.mark.parametrize('case', ['rate', 'shape', 'hash'])
def test_refuses_mismatched_bundle(nodes, probe, make_bundle, tmp_path, case):
    bundle = make_bundle(64)
    params = {'bundle_path': str(bundle)}
    if case == 'rate':
        params['control_rate_hz'] = 20.0
        expect = 'made for 10.0 Hz control but control_rate_hz is 20.0'
    else:
        bundle = tmp_path / 'edited'
        shutil.copytree(make_bundle(64), bundle)
        params['bundle_path'] = str(bundle)
        manifest = json.loads((bundle / MANIFEST).read_text())
        if case == 'shape':
            manifest['observation']['image_size'] = [96, 96]
            manifest['policy']['inputs'][0]['shape'] = [1, 96, 96, 3]
            expect = "input 'image': ONNX shape [1, 64, 64, 3], manifest says [1, 96, 96, 3]"
        else:
            (bundle / 'policy.onnx').write_bytes((bundle / 'policy.onnx').read_bytes() + b'\0')
            expect = 'policy.onnx does not match its sha256'
        (bundle / MANIFEST).write_text(json.dumps(manifest))
    nodes.start('policy', params)
    statuses = probe.record(c.POLICY_STATUS)
    actions = probe.record(c.POLICY_ACTION)
    assert probe.wait_for(lambda: status_of(statuses).get('state') == 'refused', 20), nodes.log('policy')
    assert expect in status_of(statuses)['reason'], status_of(statuses)['reason']
    assert expect in nodes.log('policy')
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    probe.wait_for(lambda: False, 1.0, Paced(probe, 0.1, np.zeros((64, 64, 3), np.uint8)))
    assert not actions and nodes.alive('policy')


def test_a_swap_while_an_image_waits_for_its_state_keeps_the_node_up(nodes, probe, make_bundle):
    """An image waits (sync_wait_s) for the robot state of its stamp; a bundle swapped in meanwhile drops it,
    and the state that then arrives must not act on an image that is gone (the node died of it once)."""
    nodes.start('policy', {'bundle_path': str(make_bundle(64)), 'sync_wait_s': 2.0, 'require_episode': True})
    statuses = probe.record(c.POLICY_STATUS)
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    image = np.zeros((64, 64, 3), np.uint8)
    assert probe.wait_for(lambda: status_of(statuses).get('reason') == 'waiting for an episode to start', 20,
                          lambda: feed(probe, image)), nodes.log('policy')
    probe.publish(c.EPISODE_EVENT, String(data='start'))                       # running: no swap until it stops
    probe.publish(c.POLICY_BUNDLE, String(data=json.dumps({'path': str(make_bundle(32)), 'version': 'tiny-32'})))
    probe.spin_for(1.5)                                            # loaded in the background, waits for a boundary
    stamp = probe.node.get_clock().now().to_msg()
    probe.publish(c.CAMERA_IMAGE, image_msg(image, stamp, 'camera_front'))     # waits for its pose ...
    probe.spin_for(0.2)
    probe.publish(c.EPISODE_EVENT, String(data='stop'))                        # ... while the swap happens
    probe.spin_for(0.5)
    probe.publish(c.EE_POSE, pose_msg(np.array([0.5, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), stamp, 'base'))
    assert probe.wait_for(lambda: status_of(statuses).get('swaps') == 1, 10), nodes.log('policy')
    probe.spin_for(2.5)
    assert nodes.alive('policy'), nodes.log('policy')
    actions = probe.record(c.POLICY_ACTION)
    small = np.zeros((32, 32, 3), np.uint8)
    probe.publish(c.EPISODE_EVENT, String(data='start'))
    assert probe.wait_for(lambda: actions, 10, lambda: feed(probe, small)), nodes.log('policy')
