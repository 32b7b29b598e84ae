"""Property tests of the safety filter (lamp_ros.core.safety) driving a simulated end effector
(tests/safety_world.py) that holds each twist for a random time up to the worst-case hold: random action
bursts at random rates (2 Hz .. 2 kHz, alternating floods among them), random hold times, pose and delivery
delays, stalls of the safety node (late commands) and limits. Whatever arrives, the end effector never
leaves the box (+2 mm is the promise; in this model it is exact), never rests outside it, and the commands
keep the rate, speed and acceleration limits per second."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from lamp_ros.core.safety import MIN_GAP_PERIODS, SafetyConfig
from lamp_ros.core.workspace import speed_toward_wall
from tests.safety_world import Burst, Outcome, World

TOLERANCE_M = 0.002
EPS = 1e-9
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

axis_value = st.one_of(st.sampled_from([-1.0, 1.0, 0.0, -1.5, 1.5]), st.floats(-1.0, 1.0))
bursts = st.lists(st.builds(
    Burst,
    action=st.tuples(axis_value, axis_value, axis_value, st.floats(-1.0, 1.0)),
    rate_hz=st.floats(float(np.log(2.0)), float(np.log(2000.0))).map(lambda x: float(np.exp(x))),   # log-uniform
    duration_s=st.floats(0.05, 2.5),
    alternate=st.booleans()), min_size=1, max_size=5)
configs = st.builds(
    lambda rate, holds, accel, speed: SafetyConfig(control_rate_hz=rate, max_hold_s=holds / rate,
                                                   max_accel_mps2=accel, max_speed_mps=speed, startup_hold_s=0.0),
    rate=st.sampled_from([5.0, 10.0, 20.0, 30.0]), holds=st.floats(1.0, 6.0), accel=st.floats(0.5, 10.0),
    speed=st.floats(0.05, 0.5))


unit = st.floats(0.0, 1.0)


def start_inside(cfg: SafetyConfig, u: tuple[float, float, float]) -> np.ndarray:
    lo, hi = np.asarray(cfg.workspace_min), np.asarray(cfg.workspace_max)
    return lo + np.asarray(u) * (hi - lo)


def run(cfg, start, bursts, seed, stalls) -> Outcome:
    return World(cfg, start_inside(cfg, start), seed, stalls_per_s=stalls[0], max_stall_s=stalls[1]).run(bursts)


stalls = st.tuples(st.sampled_from([0.0, 0.5, 2.0]), st.floats(0.0, 0.6))
worlds = dict(cfg=st.one_of(st.just(SafetyConfig(startup_hold_s=0.0)), configs), start=st.tuples(unit, unit, unit),
              bursts=bursts, seed=st.integers(0, 2**32 - 1), stalls=stalls)


@PROPERTY
@given(**worlds)
def test_the_end_effector_stays_in_the_box_whatever_arrives(cfg, start, bursts, seed, stalls):
    out = run(cfg, start, bursts, seed, stalls)
    assert out.worst_outside_m <= TOLERANCE_M, f'{out.worst_outside_m * 1e3:.2f} mm outside the box'
    assert out.worst_outside_m <= EPS          # in this model the invariant is exact
    assert out.rest_outside_m <= EPS, f'rested {out.rest_outside_m * 1e3:.3f} mm outside the box'


@PROPERTY
@given(**worlds)
def test_rate_speed_and_acceleration_hold_per_second(cfg, start, bursts, seed, stalls):
    out = run(cfg, start, bursts, seed, stalls)
    a, period = cfg.max_accel_mps2, cfg.period_s
    gap = MIN_GAP_PERIODS * period
    previous = (-np.inf, np.zeros(3), True)
    for t, v, stopped in out.published:
        dt = t - previous[0]
        assert np.linalg.norm(v) <= cfg.max_speed_mps + EPS
        assert np.all(np.abs(v) <= cfg.max_step_m * cfg.control_rate_hz + EPS)
        if stopped:               # a stop goes out at once (only after motion), zeros otherwise at the rate
            assert dt >= gap - EPS or np.any(previous[1]), f'zero {dt:.4f} s after a zero'
        else:                     # motion: never faster than the rate, acceleration per second of time
            reference = previous[1] if dt <= cfg.max_hold_s else np.zeros(3)   # else the driver has stopped
            assert dt >= gap - EPS, f'two commands {dt:.4f} s apart (period {period} s)'
            assert np.linalg.norm(v - reference) <= a * dt + EPS, 'velocity changed faster than max_accel'
            assert np.linalg.norm(v) <= np.linalg.norm(reference) + a * period + EPS, 'sped up too fast'
        previous = (t, v, stopped)
    times = np.array([t for t, _, stopped in out.published if not stopped])
    in_window = np.searchsorted(times, times + 10 * period - EPS) - np.arange(len(times))
    # one motion command per slot of the grid: a late one (up to a period), then on-time ones, fit n + 2 in n
    # periods (a stop may take a slot early: it comes at once)
    assert in_window.max(initial=0) <= 10 + 2, f'{in_window.max()} motion commands in 10 periods'
    motion = sum(1 for _, _, stopped in out.published if not stopped)
    assert out.dropped + motion <= out.actions


@settings(max_examples=2000, deadline=None)
@given(room=st.floats(0.0, 1.0), fraction=st.floats(0.0, 1.0), hold=st.floats(0.01, 1.0),
       decel=st.floats(0.1, 20.0), late=st.floats(0.0, 2.0))
def test_the_braking_curve_leaves_room_to_brake_however_late_the_next_command(room, fraction, hold, decel, late):
    """At a speed the curve allows, after any wait dt the next command can brake by decel*dt (or, after the
    driver's hold, stand still) and be allowed again: the box never needs more than the acceleration limit."""
    v = fraction * float(speed_toward_wall(np.array([room]), hold, decel)[0])
    dt = late * hold
    left = room - v * min(dt, hold)
    assert left >= -EPS
    needed = max(v - decel * dt, 0.0) if dt <= hold else 0.0
    assert needed <= float(speed_toward_wall(np.array([left]), hold, decel)[0]) + 1e-9
