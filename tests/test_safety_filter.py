"""SafetyFilter rules, without ROS."""
import math

import numpy as np
import pytest

from lamp_ros.core.safety import Command, InterventionLog, SafetyConfig, SafetyFilter

CFG = SafetyConfig(control_rate_hz=10.0, action_scale_m=0.03, workspace_min=(0.0, -0.5, 0.0),
                   workspace_max=(1.0, 0.5, 1.0), max_step_m=0.03, max_speed_mps=0.3, max_accel_mps2=100.0,
                   stale_timeout_periods=1.5, startup_hold_s=0.0)


def ready(config=CFG, position=(0.5, 0.0, 0.5), t=10.0) -> SafetyFilter:
    f = SafetyFilter(config, start_t=0.0)
    f.on_image(t)
    f.on_ee_pose(t, np.array(position))
    return f


def act(f: SafetyFilter, action, t=10.0) -> Command:
    f.on_action(t, np.array(action, dtype=float))
    return f.command(t)


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
    f.on_estop(True)
    assert np.all(f.command(10.5).velocity == 0)


def test_workspace_allows_only_motion_back_inside():
    f = ready(position=(1.0, 0.0, 0.5))                 # on the +x face
    cmd = act(f, [1.0, 0.5, 0.0, 0.0])
    assert cmd.velocity[0] == 0.0 and cmd.velocity[1] > 0 and 'workspace' in codes(cmd)
    assert act(f, [-1.0, 0.0, 0.0, 0.0]).velocity[0] < 0
    g = ready(position=(1.2, 0.0, 0.5))                 # outside: may come back, may not go further
    assert act(g, [1.0, 0, 0, 0]).velocity[0] == 0.0
    assert act(g, [-1.0, 0, 0, 0]).velocity[0] == pytest.approx(-0.3)


def test_workspace_stops_exactly_at_the_face():
    f = ready(position=(0.99, 0.0, 0.5))
    v = act(f, [1.0, 0, 0, 0]).velocity
    assert 0.99 + v[0] * 0.1 == pytest.approx(1.0)


def test_watchdog_stops_on_stale_or_missing_inputs():
    f = SafetyFilter(CFG, start_t=0.0)
    assert codes(f.watchdog(1.0)) == {'no_image', 'no_ee_pose', 'no_action'}
    f.on_image(1.0)
    f.on_ee_pose(1.0, np.array([0.5, 0, 0.5]))
    f.on_action(1.0, np.array([0.1, 0, 0, 0]))
    assert f.watchdog(1.1) is None
    stale = f.watchdog(1.0 + 0.16)                      # > 1.5 periods
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
    f.on_estop(True)
    assert f.command(10.0).state == 'estop'
    assert act(f, [1, 0, 0, 1]).state == 'estop'
    f.on_estop(False)
    assert act(f, [1, 0, 0, 1]).state == 'ok'


def test_startup_hold():
    f = SafetyFilter(SafetyConfig(startup_hold_s=1.0), start_t=0.0)
    f.on_image(0.5)
    f.on_ee_pose(0.5, np.array([0.0, 0.0, 0.5]))
    f.on_action(0.5, np.zeros(4))
    assert codes(f.command(0.5)) == {'starting'}
    f.on_image(1.5)
    f.on_ee_pose(1.5, np.array([0.0, 0.0, 0.5]))
    f.on_action(1.5, np.zeros(4))
    assert f.command(1.5).state == 'ok'


def test_startup_waits_for_the_state_of_a_known_estop_publisher():
    def fresh(f, t):
        f.on_image(t)
        f.on_ee_pose(t, np.array([0.0, 0.0, 0.5]))
        f.on_action(t, np.zeros(4))
        return f.command(t)

    f = SafetyFilter(SafetyConfig(startup_hold_s=1.0, startup_max_hold_s=5.0), start_t=0.0)
    f.on_estop_publishers(1)                          # discovered, but its latched message is still on its way
    assert codes(fresh(f, 2.0)) == {'starting'}
    f.on_estop(True)
    assert fresh(f, 2.1).state == 'estop'
    silent = SafetyFilter(SafetyConfig(startup_hold_s=1.0, startup_max_hold_s=5.0), start_t=0.0)
    silent.on_estop_publishers(1)                     # a publisher that never says anything holds 5 s at most
    assert fresh(silent, 5.5).state == 'ok'


def test_intervention_log_reports_start_and_clear_once():
    log = InterventionLog()
    f = ready()
    bad = act(f, [math.nan, 0, 0, 0])
    started, cleared = log.update(bad)
    assert [r.code for r in started] == ['action_rejected'] and not cleared
    assert log.update(act(f, [math.nan, 0, 0, 0])) == ([], [])
    started, cleared = log.update(act(f, [0.1, 0, 0, 0]))
    assert not started and cleared == ['action_rejected']
    assert log.count == 1


def test_config_validation():
    with pytest.raises(ValueError, match='workspace_min'):
        SafetyConfig(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1))
    with pytest.raises(ValueError, match='max_speed_mps'):
        SafetyConfig(max_speed_mps=0.0)
