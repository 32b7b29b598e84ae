"""Fault injection: inputs a hostile peer or a careless operator sends, each with the outcome it must have.

The faults found by a fault-injection pass against the deploy and finetune graphs, and where each is proven:

| fault | expected outcome | test |
|---|---|---|
| full speed into each wall, late commands | EE never more than 2 mm outside the box | test_safety_invariants.py (property) |
| +-1 actions alternating at 1 kHz | twists at the control rate, accel per second | test_safety_node.py::test_output_never_faster... |
| e-stop, restart after its sender is gone | e-stop restored, no motion | test_safety_node.py::test_estop_survives... |
| garbage camera frames while driving | not live: the arm stops within 2 periods | here |
| 1x1 camera image | refused, never upscaled: no action | here |
| 1 MB instructions, 40 of them | refused in one line each (throttled), policy stays responsive | here |
| learner: malformed, huge, wrong-shaped messages | refused with a reason, loop survives | test_link_fuzz.py, test_learner_intake.py |
| learner kill -9 during intake | every acked episode reaches replay | test_learner_restart.py |
| SafetyConfig() without YAML | the safe table-top box | test_safety_params.py |
"""
import json
import os

import numpy as np
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.ros.convert import gripper_state_msg, image_msg, pose_msg, twist_linear
from tests.safety_feeder import PERIOD, start_safety


def rss_mb(pid: int) -> float:
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024


def test_garbage_frames_do_not_keep_the_camera_alive(nodes, probe):
    feeder, twists, _, _ = start_safety(nodes, probe)
    good = feeder.image
    feeder.image = np.zeros((4, 4, 3), np.uint8)                  # decodes, but no camera picture
    probe.wait_for(lambda: False, 1.0, feeder.step)
    assert not np.any(twist_linear(twists[-1][1])), 'a 4x4 frame kept the camera alive'
    feeder.image = good
    assert probe.wait_for(lambda: np.any(twist_linear(twists[-1][1])), 3.0, feeder.step), 'did not resume'

    def garbage_step():
        feeder.send_images = False
        feeder.step()
        msg = image_msg(good, probe.node.get_clock().now().to_msg(), 'camera_front')
        msg.data = msg.data[:-5]                                   # truncated buffer
        probe.publish(c.CAMERA_IMAGE, msg)
    started = feeder.last_image_t
    assert probe.wait_for(lambda: not np.any(twist_linear(twists[-1][1])), 3.0, garbage_step)
    stop_t = next(t for t, m in twists if t > started and not np.any(twist_linear(m)))
    assert stop_t - started <= 2 * PERIOD + 0.05, f'stopped {stop_t - started:.3f} s after the last good frame'
    log = nodes.log('safety')
    assert 'stale_image' in log and 'does not count as live' in log
    assert log.count('does not count as live') <= 4, 'one line per reason, throttled'


def feed_policy(probe, image):
    stamp = probe.node.get_clock().now().to_msg()
    probe.publish(c.CAMERA_IMAGE, image_msg(image, stamp, 'camera_front'))
    probe.publish(c.EE_POSE, pose_msg(np.array([0.5, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), stamp, 'base'))
    probe.publish(c.GRIPPER_STATE, gripper_state_msg(1.0, stamp))


def test_tiny_images_are_refused_never_upscaled(nodes, probe, make_bundle):
    nodes.start('policy', {'bundle_path': str(make_bundle(64))})
    actions = probe.record(c.POLICY_ACTION)
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    tiny = np.full((1, 1, 3), 200, np.uint8)
    probe.wait_for(lambda: 'never upscaled' in nodes.log('policy'), 20, lambda: feed_policy(probe, tiny))
    probe.wait_for(lambda: False, 1.0, lambda: feed_policy(probe, tiny))
    assert not actions and 'never upscaled' in nodes.log('policy'), nodes.log('policy')
    image = np.zeros((64, 64, 3), np.uint8)
    assert probe.wait_for(lambda: actions, 10, lambda: feed_policy(probe, image)), 'a valid image is acted on'


def test_huge_instructions_are_refused_in_one_line_and_cost_nothing(nodes, probe, make_bundle):
    proc = nodes.start('policy', {'bundle_path': str(make_bundle(64))})
    statuses = probe.record(c.POLICY_STATUS)
    image = np.zeros((64, 64, 3), np.uint8)
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    assert probe.wait_for(lambda: statuses and json.loads(statuses[-1][1].data)['state'] == 'running', 20,
                          lambda: feed_policy(probe, image)), nodes.log('policy')
    before = rss_mb(proc.pid)
    for k in range(40):                              # latched, keep-last-1: space them so each is delivered
        probe.publish(c.INSTRUCTION, String(data=f'{k} ' + 'x' * 1_000_000))
        probe.spin_for(0.05)
    assert probe.wait_for(lambda: 'characters (at most 512)' in nodes.log('policy'), 10), nodes.log('policy')
    probe.publish(c.INSTRUCTION, String(data='turn the tap'))
    assert probe.wait_for(lambda: "instruction: 'turn the tap'" in nodes.log('policy'), 10,
                          lambda: feed_policy(probe, image)), 'the policy stayed responsive'
    log = nodes.log('policy')
    assert 0 < log.count('characters (at most 512)') <= 2 and len(log) < 20_000, 'one throttled line, no flood'
    assert rss_mb(proc.pid) - before < 40, f'{rss_mb(proc.pid) - before:.0f} MB more after 40 MB of instructions'
    assert os.path.exists(f'/proc/{proc.pid}')
