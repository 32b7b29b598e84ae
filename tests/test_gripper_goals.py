"""When the gripper node sends a GripperCommand goal: on a change, and again after a failure or a lost goal, at a
bounded rate; never a flood while the action server is down."""
import pytest

from lamp_ros.core.gripper_goals import GoalTracker, GripperGoalConfig


def test_a_goal_goes_out_on_a_change_and_is_retried_only_after_a_failure():
    goals = GoalTracker(GripperGoalConfig(goal_timeout_s=2.0, retry_s=1.0))
    assert not goals.due(None, 0.0), 'no command yet'
    assert goals.due(1.0, 0.0) and goals.position(1.0) == 0.085
    goals.sent(1.0, 0.0)
    assert not goals.due(1.0, 0.5), 'in flight'
    goals.finished(1.0, ok=True)
    assert not goals.due(1.0, 10.0), 'done: nothing more to send'
    assert goals.due(0.0, 10.0) and goals.position(0.0) == 0.0
    goals.sent(0.0, 10.0)
    goals.finished(1.0, ok=False, why='aborted')                 # a stale result of the older goal
    assert goals.outcome == ''
    goals.finished(0.0, ok=False, why='rejected')
    assert not goals.due(0.0, 10.5) and goals.due(0.0, 11.0), 'retried after retry_s'


def test_a_goal_without_a_result_is_retried_after_the_timeout_at_a_slow_rate():
    goals = GoalTracker(GripperGoalConfig(goal_timeout_s=2.0, retry_s=1.0))
    goals.sent(1.0, 0.0)
    assert not goals.due(1.0, 1.9)
    assert goals.due(1.0, 2.1) and goals.outcome == 'no result within 2 s'
    sends = 0
    t = 2.1
    while t < 12.0:                                              # a server that never answers
        if goals.due(1.0, t):
            goals.sent(1.0, t)
            sends += 1
        t += 0.1
    assert sends <= 5


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='both 0.0'):
        GripperGoalConfig(open_position=0.0)
    with pytest.raises(ValueError, match='max_effort'):
        GripperGoalConfig(max_effort=-1)
