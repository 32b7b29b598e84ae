"""SafetyFilter rules, without ROS."""
import math

import numpy as np
import pytest

from lamp_ros.core.estop_store import EstopStore, default_estop_file
from lamp_ros.core.safety import Command, DownsampleReport, InterventionLog, Reason, SafetyConfig, SafetyFilter
from lamp_ros.core.staleness import InputClock

CFG = SafetyConfig(control_rate_hz=10.0, action_scale_m=0.03, workspace_min=(0.0, -0.5, 0.0),
                   workspace_max=(1.0, 0.5, 1.0), max_step_m=0.03, max_speed_mps=0.3, max_accel_mps2=100.0,
                   stale_timeout_periods=1.5, startup_hold_s=0.0)


class Driven(SafetyFilter):
    """A filter fed like a 10 Hz graph: each act() a control period after the last, with a fresh image and
    pose, unless its time is given (then the test has fed what it wants)."""

    def __init__(self, config: SafetyConfig, position, t: float) -> None:
        super().__init__(config, start_t=0.0)
        self.t, self.position = t - 0.1, np.array(position, dtype=float)
        self.on_image(t)
        self.on_ee_pose(t, self.position)

    def act(self, action, t: float | None = None) -> Command:
        if t is None:
            self.t += 0.1
            self.on_image(self.t)
            self.on_ee_pose(self.t, self.position)
        else:
            self.t = t
        self.on_action(self.t, np.array(action, dtype=float))
        return self.command(self.t)


def ready(config=CFG, position=(0.5, 0.0, 0.5), t=10.0) -> Driven:
    return Driven(config, position, t)


def act(f: Driven, action, t=None) -> Command:
    return f.act(action, t)


def codes(cmd: Command) -> set[str]:
    return {r.code for r in cmd.reasons}


def test_action_maps_to_velocity_with_lamp_scaling():
    cmd = act(ready(SafetyConfig(**{**CFG.__dict__, 'max_speed_mps': 1.0})), [1.0, -0.5, 0.0, 0.7])
    # |a|=1 is 3 cm per 0.1 s step -> 0.3 m/s
    assert cmd.velocity == pytest.approx([0.3, -0.15, 0.0])
    assert cmd.gripper == pytest.approx(0.7)
    assert cmd.state == 'ok' and not cmd.reasons


@pytest.mark.parametrize('bad', [[math.nan, 0, 0, 0], [0, math.inf, 0, 0], [0, 0, 0, -math.inf], [0.1, 0.2, 0.3]])
def test_bad_actions_stop_and_hold_gripper(bad):
    f = ready()
    act(f, [0.5, 0, 0, 1])
    cmd = act(f, bad)
    assert cmd.stopped and np.all(cmd.velocity == 0) and cmd.gripper is None
    assert codes(cmd) == {'action_rejected'}


def test_clipping_and_limits_are_reported():
    f = ready(SafetyConfig(**{**CFG.__dict__, 'max_speed_mps': 0.1}))
    cmd = act(f, [2.0, 0.0, 0.0, 0.0])
    assert cmd.velocity == pytest.approx([0.1, 0, 0])
    assert codes(cmd) == {'action_clipped', 'speed_limit'} and cmd.state == 'limited'


def test_step_limit_bounds_each_axis():
    f = ready(SafetyConfig(**{**CFG.__dict__, 'max_step_m': 0.02, 'max_speed_mps': 10.0}))
    cmd = act(f, [1.0, -1.0, 0.5, 0.0])
    assert cmd.velocity / 10.0 == pytest.approx([0.02, -0.02, 0.015])
    assert codes(cmd) == {'step_limit'}


def test_acceleration_limit_ramps_up_but_stops_are_immediate():
    f = ready(SafetyConfig(**{**CFG.__dict__, 'max_accel_mps2': 1.0}))    # 0.1 m/s per step
    speeds = []
    for i in range(4):
        t = 10.0 + 0.1 * i
        f.on_image(t)
        f.on_ee_pose(t, np.array([0.5, 0.0, 0.5]))
        speeds.append(np.linalg.norm(act(f, [1.0, 0, 0, 0], t=t).velocity))
    assert speeds == pytest.approx([0.1, 0.2, 0.3, 0.3])
    f.on_estop(True, 10.35)
    assert np.all(f.poll(10.35).velocity == 0)         # at once, not at the next slot (10.4)


def test_workspace_allows_only_motion_back_inside():
    f = ready(position=(1.0, 0.0, 0.5))                 # on the +x face
    cmd = act(f, [1.0, 0.5, 0.0, 0.0])
    assert cmd.velocity[0] == 0.0 and cmd.velocity[1] > 0 and 'workspace' in codes(cmd)
    assert act(f, [-1.0, 0.0, 0.0, 0.0]).velocity[0] < 0
    g = ready(position=(1.2, 0.0, 0.5))                 # outside: driven back in, never further out
    cmd = act(g, [1.0, 0, 0, 0])
    assert cmd.velocity[0] < 0 and 'outside_workspace' in codes(cmd)
    assert act(g, [0.0, 0, 0, 0]).velocity[0] < 0      # even when the action says stand still
    assert act(g, [-1.0, 0, 0, 0]).velocity[0] == pytest.approx(-0.3)


def test_workspace_holds_for_the_worst_case_hold_time():
    """The driver may execute a twist for max_hold_s: held that long it still ends at the face, not beyond."""
    f = ready(position=(0.99, 0.0, 0.5))
    v = act(f, [1.0, 0, 0, 0]).velocity
    assert 0.99 + v[0] * CFG.max_hold_s == pytest.approx(1.0)
    assert 'workspace' in codes(act(f, [1.0, 0, 0, 0]))


def test_workspace_counts_the_motion_commanded_since_the_pose_was_measured():
    def second_command(measured_t):
        f = ready(position=(0.5, 0.0, 0.5))
        first = act(f, [1.0, 0, 0, 0]).velocity[0]                      # published at 10.0
        f.on_image(10.2)
        f.on_ee_pose(10.2, np.array([0.88, 0.0, 0.5]), measured_t=measured_t)
        return first, act(f, [1.0, 0, 0, 0], t=10.2).velocity[0]

    first, fresh = second_command(10.2)
    _, old = second_command(10.1)               # measured before 0.1 s of the first command's motion
    assert first == pytest.approx(0.3) and fresh == pytest.approx(0.3) and 0 < old < fresh
    assert 1.0 - 0.002 < 0.88 + first * 0.1 + old * CFG.max_hold_s <= 1.0     # (less 5 ms of delivery latency)


def test_a_pose_measured_before_the_one_in_use_is_older_news():
    f = ready(position=(0.5, 0.0, 0.5))
    f.on_ee_pose(10.2, np.array([0.6, 0.0, 0.5]), measured_t=10.19)
    f.on_ee_pose(10.25, np.array([0.9, 0.0, 0.5]), measured_t=10.0)   # delivered late, out of order
    f.on_image(10.25)
    assert act(f, [1.0, 0, 0, 0], t=10.25).velocity[0] == pytest.approx(0.3)   # planned from x = 0.6


def test_watchdog_stops_on_stale_or_missing_inputs():
    f = SafetyFilter(CFG, start_t=0.0)
    assert codes(f.poll(1.0)) == {'no_image', 'no_ee_pose', 'no_action'}
    f.on_image(1.0)
    f.on_ee_pose(1.0, np.array([0.5, 0, 0.5]))
    f.on_action(1.0, np.array([0.1, 0, 0, 0]))
    assert not f.poll(1.1).stopped
    stale = f.poll(1.0 + 0.16)                          # > 1.5 periods: stops at once (the arm was moving)
    assert codes(stale) == {'stale_image', 'stale_ee_pose', 'stale_action'}
    assert stale.gripper is None and np.all(stale.velocity == 0)


def test_broken_pose_is_no_fresh_pose():
    f = ready(t=1.0)
    f.on_ee_pose(1.2, np.array([math.nan, 0, 0]))
    f.on_image(1.2)
    f.on_action(1.2, np.zeros(4))
    assert 'stale_ee_pose' in codes(f.command(1.2))


def test_estop_is_latched_until_released():
    f = ready()
    assert f.on_estop(True, 10.0) == 'engaged'
    assert f.command(10.0).state == 'estop'
    assert act(f, [1, 0, 0, 1]).state == 'estop'
    assert f.on_estop(True, 10.0) == ''
    assert f.on_estop(False, 10.0) == 'released'
    assert act(f, [1, 0, 0, 1]).state == 'ok'


def test_startup_hold():
    f = SafetyFilter(SafetyConfig(startup_hold_s=1.0), start_t=0.0)
    f.on_image(0.5)
    f.on_ee_pose(0.5, np.array([0.45, 0.0, 0.15]))
    f.on_action(0.5, np.zeros(4))
    assert codes(f.command(0.5)) == {'starting'}
    f.on_image(1.5)
    f.on_ee_pose(1.5, np.array([0.45, 0.0, 0.15]))
    f.on_action(1.5, np.zeros(4))
    assert f.command(1.5).state == 'ok'


def test_startup_waits_for_the_state_of_a_known_estop_publisher():
    def fresh(f, t):
        f.on_image(t)
        f.on_ee_pose(t, np.array([0.45, 0.0, 0.15]))
        f.on_action(t, np.zeros(4))
        return f.command(t)

    f = SafetyFilter(SafetyConfig(startup_hold_s=1.0, startup_max_hold_s=5.0), start_t=0.0)
    f.on_estop_publishers(1)                          # discovered, but its latched message is still on its way
    assert codes(fresh(f, 2.0)) == {'starting'}
    f.on_estop(True, 2.05)
    assert fresh(f, 2.1).state == 'estop'
    silent = SafetyFilter(SafetyConfig(startup_hold_s=1.0, startup_max_hold_s=5.0), start_t=0.0)
    silent.on_estop_publishers(1)                     # a publisher that never says anything holds 5 s at most
    assert fresh(silent, 5.5).state == 'ok'


def test_an_estop_publisher_discovered_after_the_arm_moved_does_not_freeze_it():
    f = SafetyFilter(SafetyConfig(startup_hold_s=1.0, startup_max_hold_s=5.0), start_t=0.0)
    f.on_image(1.5)
    f.on_ee_pose(1.5, np.array([0.45, 0.0, 0.15]))
    f.on_action(1.5, np.array([1.0, 0.0, 0.0, 0.0]))
    first = f.command(1.5)
    assert first.state in ('ok', 'limited') and np.any(first.velocity != 0)
    assert not f.waiting_for_estop_state(2.0), 'the start is over: the publisher count no longer matters'
    f.on_estop_publishers(1)                          # e.g. the dashboard, discovered late, never pressed
    f.on_image(2.0)
    f.on_ee_pose(2.0, np.array([0.45, 0.0, 0.15]))
    f.on_action(2.0, np.array([1.0, 0.0, 0.0, 0.0]))
    assert f.command(2.0).state in ('ok', 'limited')
    f.on_estop(True, 2.1)                             # what it says still counts
    assert f.command(2.1).state == 'estop'


def test_intervention_log_reports_start_and_clear_once():
    log = InterventionLog()
    f = ready()
    bad = act(f, [math.nan, 0, 0, 0])
    started, cleared = log.update(bad, 10.0)
    assert [r.code for r in started] == ['action_rejected'] and not cleared
    assert log.update(act(f, [math.nan, 0, 0, 0]), 10.1) == ([], [])
    started, cleared = log.update(act(f, [0.1, 0, 0, 0]), 10.2)
    assert not started and cleared == ['action_rejected']          # a stop clears at once
    assert log.count == 1


def test_a_limit_that_comes_and_goes_is_one_event():
    log, limited = InterventionLog(linger_s=1.0), Command(np.zeros(3), 0.0, (Reason('accel_limit', 'x'),))
    free = Command(np.zeros(3), 0.0)
    events = [log.update(cmd, 0.1 * i) for i, cmd in enumerate([limited, free] * 10)]
    assert sum(len(s) for s, _ in events) == 1 and not any(c for _, c in events)
    assert log.update(free, 3.0) == ([], ['accel_limit'])


def test_config_validation():
    with pytest.raises(ValueError, match='workspace_min'):
        SafetyConfig(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1))
    with pytest.raises(ValueError, match='max_speed_mps'):
        SafetyConfig(max_speed_mps=0.0)
    with pytest.raises(ValueError, match='max_hold_s'):
        SafetyConfig(max_hold_s=0.05)                   # the driver would stop before each 10 Hz command


def feed(f: SafetyFilter, t: float, position=(0.5, 0.0, 0.5)) -> None:
    f.on_image(t)
    f.on_ee_pose(t, np.array(position))


def test_commands_leave_at_the_control_rate_and_the_newest_action_wins():
    f = ready()
    f.on_action(10.0, np.array([0.5, 0, 0, 1.0]))
    assert f.poll(10.0).velocity[0] == pytest.approx(0.15)      # on time: passed on at once
    f.on_action(10.01, np.array([1.0, 0, 0, 0.0]))
    assert f.poll(10.01) is None                                  # within the period: waits for its slot
    f.on_action(10.02, np.array([-1.0, 0, 0, -1.0]))
    assert f.poll(10.05) is None and f.pending and f.next_slot == pytest.approx(10.09)   # its slot (grid)
    feed(f, 10.09)
    cmd = f.poll(10.1)
    assert cmd.gripper == -1.0 and cmd.velocity[0] < 0 and f.dropped == 1    # the newest, one dropped
    assert f.poll(10.12) is None                                  # nothing new: nothing to send


def test_a_stop_goes_out_at_once_then_zeros_at_the_control_rate():
    f = ready()
    f.on_action(10.0, np.array([0.5, 0, 0, 1.0]))
    f.poll(10.0)
    f.on_estop(True, 10.02)
    assert f.poll(10.02).state == 'estop'                         # the arm was moving: at once
    assert f.poll(10.05) is None                                  # already still: zeros only at the control rate
    assert f.poll(10.2).state == 'estop'                          # (the stop took the slot at 10.1)


def test_acceleration_holds_per_second_under_a_1khz_alternating_flood():
    f, out = ready(SafetyConfig(**{**CFG.__dict__, 'max_accel_mps2': 3.0})), []
    signs = np.random.default_rng(0).choice([-1.0, 1.0], 2000)
    for i in range(2000):                                         # 2 s of +-1 at 1 kHz
        t = 10.0 + i * 1e-3
        feed(f, t)
        f.on_action(t, np.array([signs[i], 0, 0, 0]))
        cmd = f.poll(t)
        if cmd is not None:
            out.append((t, cmd.velocity))
    times = np.array([t for t, _ in out])
    v = np.array([v for _, v in out])
    assert len(out) <= 21 and np.all(np.diff(times) >= 0.09 - 1e-9) and np.all(np.diff(times)[1:] >= 0.1 - 1e-9)
    assert np.all(np.linalg.norm(np.diff(v, axis=0), axis=1) <= 3.0 * np.diff(times) + 1e-9)
    assert len({np.sign(x) for x in v[:, 0]}) > 1                 # both signs got through: the limit did the work
    assert f.dropped == 2000 - len(out) - f.pending


def test_a_late_command_may_brake_harder_but_never_speeds_up_faster():
    f = ready(SafetyConfig(**{**CFG.__dict__, 'max_accel_mps2': 1.0}))
    assert act(f, [1.0, 0, 0, 0]).velocity[0] == pytest.approx(0.1)      # one period of ramp
    feed(f, 10.3)
    assert act(f, [1.0, 0, 0, 0], t=10.3).velocity[0] == pytest.approx(0.2)   # late: still one period's ramp
    feed(f, 10.4)
    assert act(f, [-1.0, 0, 0, 0], t=10.4).velocity[0] == pytest.approx(0.1)  # on time: 0.1 m/s per 0.1 s


def test_an_estop_restored_from_disk_ignores_a_release_heard_during_start_up():
    f = SafetyFilter(SafetyConfig(startup_max_hold_s=5.0), start_t=0.0, estop_engaged=True)
    assert f.estop_engaged and f.on_estop(False, 0.5) == 'ignored' and f.estop_engaged
    assert f.on_estop(False, 6.0) == 'released' and not f.estop_engaged
    g = SafetyFilter(SafetyConfig(startup_max_hold_s=5.0), start_t=0.0)     # engaged while running: any release
    assert g.on_estop(True, 0.2) == 'engaged' and g.on_estop(False, 0.5) == 'released'


def test_estop_store_survives_restarts_and_fails_safe(state_home):
    path = default_estop_file('/safety')
    assert path == state_home / 'lamp_ros' / 'safety.estop.json'
    assert default_estop_file('/arm1/safety').name == 'arm1.safety.estop.json'
    store = EstopStore(path)
    assert not store.load().engaged                               # nothing saved yet
    store.save(True)
    assert EstopStore(path).load().engaged
    store.save(False)
    assert not EstopStore(path).load().engaged
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]   # atomic: no temporary left behind
    path.write_text('{"engaged": fal')                            # torn or foreign: unknown is not safe
    state = EstopStore(path).load()
    assert state.engaged and 'treated as engaged' in state.detail


def test_downsampling_is_reported_when_it_starts_and_when_it_ends():
    report = DownsampleReport(quiet_s=2.0, min_dropped=5)
    lines = [report.update(0.01 * i, i) for i in range(1, 101)]   # 1 s of drops
    lines += [report.update(t, 100) for t in (1.5, 2.5, 3.1, 10.0)]
    said = [line for batch in lines for line in batch]
    assert len(said) == 2 and 'down-sampling' in said[0] and '100 actions dropped' in said[1]
    assert lines[4] == [said[0]] and not report.active            # started at the fifth drop
    sporadic = DownsampleReport(quiet_s=2.0, min_dropped=5)      # one now and then, by jitter: no news
    assert not any(sporadic.update(t, n) for n, t in enumerate((0.0, 3.0, 6.0, 9.0, 12.0, 15.0), start=1))


def test_stale_limits_follow_each_inputs_measured_rhythm():
    rng = np.random.default_rng(0)
    f = SafetyFilter(CFG, start_t=0.0)
    assert [c.limit_s for c in f.clocks.values()] == pytest.approx([0.15] * 3), 'before any rhythm is known'
    t_image, t_pose = 1.0, 1.0
    for _ in range(200):                                    # a jittery 10 Hz camera, a 500 Hz pose
        t_image += 0.1 + rng.uniform(-0.02, 0.05)
        f.on_image(t_image)
        for _ in range(50):
            t_pose += 0.002
            f.on_ee_pose(t_pose, np.array([0.5, 0.0, 0.5]))
    assert f.clocks['image'].limit_s == pytest.approx(0.15), 'a jittery camera: the ceiling, as the fixed limit was'
    assert f.clocks['ee_pose'].limit_s == pytest.approx(0.04), 'a fast input gets a tight limit'
    f.on_action(t_image, np.zeros(4))
    reasons = f.poll(t_image + 0.16).reasons
    assert any(r.code == 'stale_image' and 'from its measured rate' in r.detail for r in reasons), reasons


def test_input_clock_validation():
    with pytest.raises(ValueError):
        InputClock(0.15, 0.2, 0.1, 1.5)
    with pytest.raises(ValueError, match='stale_margin'):
        SafetyConfig(stale_margin=0.5)


def test_acceleration_grows_within_the_jerk_limit_at_high_rates():
    cfg = SafetyConfig(control_rate_hz=100.0, workspace_min=(-5.0, -5.0, -5.0), workspace_max=(5.0, 5.0, 5.0),
                       startup_hold_s=0.0, max_jerk_mps3=60.0, max_accel_mps2=3.0, max_step_m=1.0)
    f = SafetyFilter(cfg, start_t=0.0)
    velocities, t = [np.zeros(3)], 1.0
    for _ in range(40):                                    # full speed asked along x from rest, 100 Hz
        t += 0.01
        f.on_image(t)
        f.on_ee_pose(t, np.zeros(3))
        f.on_action(t, np.array([1.0, 0.0, 0.0, 1.0]))
        velocities.append(f.poll(t).velocity)
    accel = np.diff([v[0] for v in velocities]) / 0.01
    assert np.all(accel <= 3.0 + 1e-9) and np.all(np.diff(accel) <= 60.0 * 0.01 + 1e-9)
    assert accel[0] == pytest.approx(0.6) and max(accel) == pytest.approx(3.0), 'ramps up, then the accel cap'
    assert velocities[-1][0] == pytest.approx(cfg.max_speed_mps)
