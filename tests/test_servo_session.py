"""The MoveIt Servo adapter's ROS-free parts: the servo_node call sequence (twist mode before any twist, paused
while the e-stop is on, twist mode again after a resume, failed calls retried) and the homing motion of robot/reset
(reaches home, never faster than its speed, never a bigger velocity change per period than the acceleration
limit allows, inside the box whatever the start)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamp_ros.core.homing import Homing, HomingConfig
from lamp_ros.core.servo_session import COMMAND_TYPE_TWIST, ServoCall, ServoSession

SWITCH = ServoCall('switch_command_type', COMMAND_TYPE_TWIST)


def answer(session, now=0.0, ok=True, message=''):
    call = session.next_call(now)
    assert call is not None
    session.sent(call)
    session.answered(call, ok, message, now)
    return call


def test_twists_are_forwarded_only_in_twist_mode_and_never_under_e_stop():
    s = ServoSession()
    assert not s.forwarding
    assert answer(s) == SWITCH and s.forwarding and s.next_call(0.0) is None
    s.on_estop(True)
    assert not s.forwarding
    assert answer(s) == ServoCall('pause_servo', True) and s.paused and not s.forwarding
    assert s.next_call(0.0) is None, 'nothing more while paused'
    s.on_estop(False)
    assert not s.forwarding, 'still paused until servo says it resumed'
    assert answer(s) == ServoCall('pause_servo', False)
    assert answer(s) == SWITCH and s.forwarding, 'twist mode is selected again after a resume'


def test_one_call_at_a_time_and_a_failed_call_is_retried_later_with_its_reason():
    s = ServoSession(retry_s=1.0)
    call = s.next_call(0.0)
    s.sent(call)
    assert s.next_call(0.0) is None and not s.forwarding
    s.answered(call, False, '/servo_node/switch_command_type not available', 0.0)
    assert 'not available' in s.reason and s.next_call(0.5) is None
    assert s.next_call(1.0) == SWITCH


def test_an_e_stop_during_a_call_pauses_right_after_it():
    s = ServoSession()
    call = s.next_call(0.0)
    s.sent(call)
    s.on_estop(True)
    s.answered(call, True, '', 0.0)
    assert not s.forwarding and s.next_call(0.0) == ServoCall('pause_servo', True)


CONFIG = HomingConfig(home=(0.46, 0.0, 0.2))
LOW, HIGH = np.asarray(CONFIG.workspace_min), np.asarray(CONFIG.workspace_max)


def simulate(start, steps=400, dt=0.1):
    homing, position = Homing(CONFIG), np.asarray(start, float)
    velocities = [np.zeros(3)]
    for _ in range(steps):
        velocities.append(homing.step(position, dt))
        position = position + velocities[-1] * dt
        yield position, velocities[-1], velocities[-2]


def test_homing_reaches_home_and_stops_there():
    positions = [p for p, _, _ in simulate([0.25, -0.2, 0.05])]
    assert Homing(CONFIG).arrived(positions[-1])
    assert np.linalg.norm(positions[-1] - positions[-2]) < 1e-4, 'at rest at home'


inside = st.tuples(*(st.floats(float(lo), float(hi)) for lo, hi in zip(LOW, HIGH)))


@settings(max_examples=100, deadline=None)
@given(start=inside, dt=st.sampled_from([0.02, 0.05, 0.1]))
def test_homing_keeps_speed_acceleration_and_the_box(start, dt):
    for position, velocity, previous in simulate(start, steps=200, dt=dt):
        assert np.linalg.norm(velocity) <= CONFIG.speed_mps + 1e-9
        assert np.linalg.norm(velocity - previous) <= CONFIG.accel_mps2 * dt + 1e-9
        assert np.all(position >= LOW - 1e-6) and np.all(position <= HIGH + 1e-6)


def test_a_home_outside_the_box_or_a_speed_past_the_safety_limit_is_refused():
    with pytest.raises(ValueError, match='must lie in the workspace box'):
        HomingConfig(home=(1.5, 0.0, 0.2))
    with pytest.raises(ValueError, match='exceeds the safety layer'):
        HomingConfig(speed_mps=5.0)
