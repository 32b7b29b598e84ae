"""Fault injection: inputs a hostile peer or a careless operator sends, each with the outcome it must have.

The faults found by a fault-injection pass against the deploy and finetune graphs, and where each is proven:

| fault | expected outcome | test |
|---|---|---|
| full speed into each wall, late commands | EE never > 2 mm outside the box, never rests outside | test_safety_invariants.py::test_the_end_effector_stays_in_the_box_whatever_arrives; bench/safety_walls.py |
| +-1 actions alternating at 1 kHz | twists at the control rate, accel and jerk per second, one log line | test_safety_node.py::test_output_never_faster_than_the_control_rate_under_a_1khz_alternating_flood; test_safety_invariants.py::test_rate_speed_and_acceleration_hold_per_second |
| e-stop, restart after its sender is gone | e-stop restored, no motion until released | test_safety_node.py::test_estop_survives_a_restart_after_its_sender_is_gone |
| garbage camera frames while driving | not live: the arm stops within 2 periods, one log line per kind | here |
| 1x1 camera image | refused, never upscaled: no action | here |
| 1 MB instructions, 40 of them | refused in one log line, no memory growth, policy stays responsive | here |
| learner: chunk without first_step, odd buffer, list metadata | refused with a reason, the loop survives, the robot goes on | test_link_fuzz.py::test_any_message_is_answered_and_the_robot_goes_on |
| learner: 200 MB messages, 5 in parallel | refused before buffering (size limit) | test_learner_intake.py::test_messages_over_the_size_limit_are_refused_without_being_buffered; bench/learner_flood.py |
| learner: bundles to a peer that sent garbage | bundles only after a valid hello | test_learner_intake.py::test_bundles_go_only_to_robots_with_a_valid_hello |
| learner: wrong-shaped chunk | refused before the ack, never blocks an episode | test_link_fuzz.py::test_nothing_acknowledged_is_lost |
| learner kill -9 during intake | every acked episode reaches the replay | test_learner_restart.py; test_learner_intake.py::test_a_restart_completes_what_a_crash_left_in_incoming |
| finetune with reward:=r3m and no weights | training pauses and says so; another reward source is refused | test_learner_intake.py::test_training_pauses_while_rewards_are_missing, ::test_the_run_keeps_one_reward_source |
| 10 min soak under load | < 0.5% spurious stops (stale limits from measured rates) | bench/soak.py (measured, not a test) |
| deploy graph: no episode on a real arm; real without a bundle; a refused bundle | no motion outside episodes; refused at start; exit 1 before any node | test_graph.py::test_a_real_arm_moves_only_inside_an_episode, ::test_a_real_arm_never_runs_the_default_bundle_implicitly, ::test_a_bundle_the_policy_would_refuse_fails_deploy_before_any_node_starts |
| SafetyConfig() without YAML | the safe table-top box | test_safety_params.py::test_the_safe_defaults_are_the_table_top_values_and_config_only_overrides_them |
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
