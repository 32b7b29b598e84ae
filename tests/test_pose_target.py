"""The twist -> pose-target integrator of the impedance adapter: the target follows the twist, stays in the box
whatever arrives, never leads the arm by more than max_lead_m, and rests on the arm when the twist stops."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamp_ros.core.pose_target import PoseTarget, PoseTargetConfig

CONFIG = PoseTargetConfig()
LOW, HIGH = np.asarray(CONFIG.workspace_min), np.asarray(CONFIG.workspace_max)


def test_the_target_follows_the_twist_and_rests_on_the_arm_at_a_stop():
    target = PoseTarget(CONFIG)
    arm = np.array([0.4, 0.0, 0.2])
    assert np.allclose(target.step(np.array([0.1, 0.0, 0.0]), 0.1, arm), arm), 'the first target is the arm'
    assert np.allclose(target.step(np.array([0.1, 0.0, 0.0]), 0.1, arm), arm + [0.01, 0, 0])
    assert np.allclose(target.step(np.zeros(3), 0.1, arm + [0.004, 0, 0]), arm + [0.004, 0, 0])


def test_a_stuck_arm_is_not_pulled_harder_and_harder():
    target = PoseTarget(CONFIG)
    arm = np.array([0.4, 0.0, 0.2])
    for _ in range(50):                                       # the arm is blocked (contact), the twist goes on
        out = target.step(np.array([0.0, 0.3, 0.0]), 0.1, arm)
    assert np.linalg.norm(out - arm) == pytest.approx(CONFIG.max_lead_m)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.tuples(finite, finite, finite), st.floats(0.0, 10.0),
                                st.tuples(st.floats(0.0, 1.0), st.floats(-0.5, 0.5), st.floats(-0.2, 0.5))),
                      min_size=1, max_size=30))
def test_whatever_arrives_the_target_stays_in_the_box_and_near_the_arm(steps):
    target = PoseTarget(CONFIG)
    for velocity, dt, arm in steps:
        out = target.step(np.array(velocity), dt, np.array(arm))
        assert np.all(out >= LOW - 1e-12) and np.all(out <= HIGH + 1e-12)
        nearest = np.clip(arm, LOW, HIGH)
        assert np.linalg.norm(out - nearest) <= CONFIG.max_lead_m + np.linalg.norm(np.array(arm) - nearest) + 1e-9


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='workspace_min'):
        PoseTargetConfig(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1))
    with pytest.raises(ValueError, match='max_lead_m'):
        PoseTargetConfig(max_lead_m=0)
