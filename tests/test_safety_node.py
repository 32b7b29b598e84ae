"""The safety node as a real process on real topics: the test plays camera, arm driver and policy."""
import json
import math
import time

import numpy as np
import pytest
import rclpy
from std_msgs.msg import Bool

from lamp_ros import contract as c
from lamp_ros.ros.convert import action_msg, to_sec, twist_linear
from lamp_ros.ros.interfaces import profile
from tests.safety_feeder import PERIOD, RATE, SCALE, Feeder, start_safety


@pytest.fixture
def safety(nodes, probe):
    return start_safety(nodes, probe)


def moving(msg) -> bool:
    return np.linalg.norm(twist_linear(msg)) > 1e-9


def first_zero_after(twists, t0):
    return next((t for t, m in twists if t >= t0 and not moving(m)), None)


def test_passes_scaled_velocity_and_gripper(safety, probe):
    feeder, twists, grips, _ = safety
    probe.wait_for(lambda: False, 0.5, feeder.step)
    t, msg = twists[-1]
    assert twist_linear(msg) == pytest.approx([0.5 * SCALE * RATE, 0, 0], abs=1e-6)
    assert msg.header.frame_id == 'base'
    assert grips and grips[-1][1].data == pytest.approx(1.0)


def test_nan_action_stops_within_two_periods(safety, probe, nodes):
    feeder, twists, grips, _ = safety
    feeder.action = np.array([math.nan, 0.0, 0.0, 0.0])
    t_bad = time.monotonic()
    probe.publish(c.POLICY_ACTION, action_msg(feeder.action))
    assert probe.wait_for(lambda: first_zero_after(twists, t_bad) is not None, 1.0, feeder.step)
    assert first_zero_after(twists, t_bad) - t_bad <= 2 * PERIOD
    probe.wait_for(lambda: False, 0.5, feeder.step)
    assert not any(moving(m) for t, m in twists if t > t_bad + 2 * PERIOD), 'moved after a NaN action'
    assert not [t for t, _ in grips if t > t_bad + 0.05], 'gripper must be held (no gripper action) while stopped'
    feeder.action = np.array([0.2, 0.0, 0.0, 1.0])
    assert probe.wait_for(lambda: moving(twists[-1][1]), 2.0, feeder.step), 'did not resume after a valid action'
    assert nodes.log('safety').count('action_rejected: non-finite') == 1, 'intervention must be logged once'


def test_stale_camera_stops_within_two_periods(safety, probe, nodes):
    feeder, twists, _, _ = safety
    feeder.send_images = False
    t_last = feeder.last_image_t
    assert probe.wait_for(lambda: first_zero_after(twists, t_last) is not None, 2.0, feeder.step)
    stopped_after = first_zero_after(twists, t_last) - t_last
    assert stopped_after <= 2 * PERIOD, f'zero velocity {stopped_after:.3f} s after the last image'
    probe.wait_for(lambda: False, 0.5, feeder.step)
    assert not moving(twists[-1][1])
    assert 'stale_image' in nodes.log('safety')
    feeder.send_images = True
    assert probe.wait_for(lambda: moving(twists[-1][1]), 2.0, feeder.step), 'did not resume with fresh images'


def test_estop_latches_until_released(safety, probe):
    feeder, twists, _, status = safety
    t_stop = time.monotonic()
    probe.publish(c.ESTOP, Bool(data=True))
    assert probe.wait_for(lambda: first_zero_after(twists, t_stop) is not None, 1.0, feeder.step)
    assert first_zero_after(twists, t_stop) - t_stop <= 2 * PERIOD
    probe.wait_for(lambda: False, 0.6, feeder.step)               # actions keep coming: still stopped
    assert not any(moving(m) for t, m in twists if t > t_stop + 2 * PERIOD)
    assert '"state": "estop"' in status[-1][1].data
    probe.publish(c.ESTOP, Bool(data=False))
    assert probe.wait_for(lambda: moving(twists[-1][1]), 2.0, feeder.step), 'no motion after release'


def test_workspace_box_blocks_motion_outward(safety, probe):
    feeder, twists, _, _ = safety
    feeder.position = np.array([0.75, 0.0, 0.2])                  # on the +x face of the box
    feeder.action = np.array([1.0, 0.5, 0.0, 1.0])
    t0 = time.monotonic()
    probe.wait_for(lambda: False, 0.5, feeder.step)
    v = twist_linear([m for t, m in twists if t > t0 + 0.2][-1])
    assert v[0] == pytest.approx(0.0, abs=1e-9) and v[1] > 0     # x blocked, y still free


def test_late_joiner_gets_estop_state(nodes, probe):
    """estop is latched (transient local): a safety node started after the e-stop still honours it."""
    probe.publish(c.ESTOP, Bool(data=True))
    nodes.start('safety', {'control_rate_hz': RATE})
    twists = probe.record(c.EE_TWIST_CMD)
    feeder = Feeder(probe)
    feeder.position = np.array([0.5, 0.0, 0.2])
    probe.wait_for(lambda: len(twists) > 20, 15, feeder.step)
    assert twists and not any(moving(m) for _, m in twists)
    assert 'E-STOP ENGAGED' in nodes.log('safety')


def test_operator_takes_over_and_applied_actions_flag_interventions(safety, probe, nodes):
    from std_msgs.msg import String
    from lamp_ros.ros.convert import applied_action
    feeder, twists, _, _ = safety
    applied = probe.record(c.APPLIED_ACTION)
    feeder.action = np.array([0.5, 0.0, 0.0, 1.0])                 # policy goes +x
    teleop = np.array([0.0, -0.4, 0.0, 0.0])                       # operator goes -y

    def operator_step():
        feeder.step()
        probe.publish(c.TELEOP_ACTION, action_msg(teleop))

    t0 = time.monotonic()
    probe.wait_for(lambda: False, 0.6, operator_step)
    v = twist_linear(twists[-1][1])
    assert v[0] == pytest.approx(0.0) and v[1] == pytest.approx(-0.4 * SCALE * RATE)
    recent = [applied_action(m) for t, m in applied if t > t0 + 0.2]
    assert recent and all(flag for _, flag in recent)
    assert recent[-1][0] == pytest.approx(teleop, abs=1e-5)

    t_release = time.monotonic()                                   # operator lets go: policy back after hold-off
    assert probe.wait_for(lambda: twist_linear(twists[-1][1])[0] > 0, 3.0, feeder.step)
    back = next(t for t, m in twists if t > t_release and twist_linear(m)[0] > 0)
    assert back - t_release >= 0.4                                 # takeover_hold_s = 0.5, minus one period
    probe.wait_for(lambda: False, 0.3, feeder.step)
    assert not applied_action(applied[-1][1])[1]

    probe.publish(c.CONTROL_MODE, String(data='policy'))          # operator locked out
    probe.spin_for(0.2)
    t_locked = time.monotonic()
    probe.wait_for(lambda: False, 0.6, operator_step)
    assert all(twist_linear(m)[0] > 0 for t, m in twists if t > t_locked + 0.1)
    for _ in range(10):                                            # bad modes: one line, the mode kept
        probe.publish(c.CONTROL_MODE, String(data='turbo' * 100))
    probe.wait_for(lambda: False, 0.3, operator_step)
    assert nodes.log('safety').count('control/mode ignored') == 1 and 'turbotur' in nodes.log('safety')
    assert all(twist_linear(m)[0] > 0 for t, m in twists[-3:])


def flood(probe, feeder, seconds: float, hz: float = 1000.0) -> int:
    """+-1 along x, alternating, at `hz` on average on policy/action (camera and pose at the control rate beside
    it). The gaps vary a little, so that which sign is newest when a command is due is not always the same."""
    sent, sign, end = 0, 1.0, time.monotonic() + seconds
    next_t, rng = time.monotonic(), np.random.default_rng(0)
    while time.monotonic() < end:
        feeder.step()
        if time.monotonic() >= next_t:
            probe.publish(c.POLICY_ACTION, action_msg(np.array([sign, 0.0, 0.0, 1.0])))
            sign, sent, next_t = -sign, sent + 1, next_t + rng.uniform(0.5, 1.5) / hz
        probe.executor.spin_once(timeout_sec=0)
    return sent


def test_output_never_faster_than_the_control_rate_under_a_1khz_alternating_flood(safety, probe, nodes):
    feeder, twists, _, status = safety
    feeder.send_actions = False
    t0 = time.monotonic()
    sent = flood(probe, feeder, 3.0)
    probe.wait_for(lambda: False, 0.3, feeder.step)
    out = [(to_sec(m.header.stamp), twist_linear(m)) for t, m in twists if t > t0 + 0.2 and t < t0 + 3.0]
    stamps, v = np.array([s for s, _ in out]), np.array([v for _, v in out])
    gaps = np.diff(stamps)
    accel = np.linalg.norm(np.diff(v, axis=0), axis=1) / gaps
    flips = int(np.sum(np.diff(np.sign(v[:, 0])) != 0))
    print(f'flood: {sent} actions in 3 s -> {(len(out) - 1) / (stamps[-1] - stamps[0]):.2f} Hz out, min gap '
          f'{gaps.min() * 1e3:.1f} ms, max accel {accel.max():.2f} m/s^2, {flips} sign changes')
    assert sent > 1500, f'the probe managed only {sent} actions in 3 s'
    assert gaps.min() >= 0.9 * PERIOD - 1e-6, f'two twists {gaps.min() * 1e3:.1f} ms apart'   # stamps: decisions
    assert len(out) <= 2.8 * RATE + 2, f'{len(out)} twists in 2.8 s'     # one per slot of the grid
    assert accel.max() <= 3.0 * (1 + 1e-4), f'{accel.max():.4f} m/s^2 > max_accel_mps2 3.0'   # (stamp rounding)
    log = nodes.log('safety')
    assert log.count('down-sampling') == 1, log                   # reported once, not per dropped action
    assert len(log.splitlines()) < 20, log
    assert json.loads(status[-1][1].data)['dropped_actions'] > 1000


def test_estop_survives_a_restart_after_its_sender_is_gone(nodes, probe, state_home):
    """The e-stop sender goes away, the safety node restarts: it restores the e-stop from its state file and
    holds still, ignores a stale latched release from another publisher, and moves only after a new release."""
    params = {'control_rate_hz': RATE, 'startup_max_hold_s': 5.0}
    nodes.start('safety', params)
    twists, status = probe.record(c.EE_TWIST_CMD), probe.record(c.SAFETY_STATUS)
    feeder = Feeder(probe)
    assert probe.wait_for(lambda: twists and moving(twists[-1][1]), 20, feeder.step), nodes.log('safety')
    probe.publish(c.ESTOP, Bool(data=False))                      # an operator console, released long ago
    probe.wait_for(lambda: False, 0.3, feeder.step)
    sender = rclpy.create_node('estop_button')
    sender.create_publisher(Bool, c.ESTOP.name, profile(c.ESTOP)).publish(Bool(data=True))
    estop = lambda: status and json.loads(status[-1][1].data)['estop']     # noqa: E731
    assert probe.wait_for(estop, 10, feeder.step), nodes.log('safety')
    state_file = state_home / 'lamp_ros' / 'safety.estop.json'           # the default: under $XDG_STATE_HOME
    saved = lambda: json.loads(state_file.read_text())['engaged']          # noqa: E731
    assert probe.wait_for(saved, 5, feeder.step), 'e-stop not saved'       # written just after the stop
    sender.destroy_node()                                         # the e-stop's sender is gone
    assert nodes.stop('safety') == 0

    nodes.start('safety', params)                                 # restart: nobody latches True any more
    t_restart = time.monotonic()
    probe.wait_for(lambda: False, 4.0, feeder.step)
    after = [m for t, m in twists if t > t_restart]
    log = nodes.log('safety')
    assert after and not any(moving(m) for m in after), 'moved after a restart although the e-stop was engaged'
    assert 'E-STOP ENGAGED (restored' in log and 'release ignored' in log, log
    probe.wait_for(lambda: time.monotonic() > t_restart + 5.5, 10, feeder.step)

    def release_again():                                          # an explicit release, now; a loaded machine
        feeder.step()                                             # may have started the node late, so a release
        if int(time.monotonic() * 2) % 2 == 0:                    # inside its startup_max_hold_s is ignored:
            probe.publish(c.ESTOP, Bool(data=False))              # the operator presses it again
    assert probe.wait_for(lambda: moving(twists[-1][1]), 10.0, release_again), nodes.log('safety')
    assert probe.wait_for(lambda: not saved(), 5, feeder.step), 'release not saved'
