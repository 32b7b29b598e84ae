"""ActionArbiter: operator takeover, hold-off, modes."""
import pytest

from lamp_ros.core.arbiter import ActionArbiter, ArbiterConfig


def test_auto_mode_operator_takes_over_and_hands_back_after_hold():
    a = ActionArbiter(ArbiterConfig(takeover_hold_s=0.5))
    assert a.accept('policy', 0.0)
    assert a.accept('teleop', 0.1) and a.operator_engaged(0.1)
    assert not a.accept('policy', 0.2) and not a.accept('policy', 0.6)
    assert a.accept('teleop', 0.65)                  # still engaged: hold restarts
    assert not a.accept('policy', 1.1)
    assert a.accept('policy', 1.2) and not a.operator_engaged(1.2)


def test_fixed_modes():
    a = ActionArbiter(ArbiterConfig(), mode='policy')
    assert not a.accept('teleop', 0.0) and a.accept('policy', 0.1)
    a.set_mode('teleop')
    assert not a.accept('policy', 0.2) and a.accept('teleop', 0.3) and a.operator_engaged(5.0)
    a.set_mode('hold')
    assert not a.accept('policy', 0.4) and not a.accept('teleop', 0.5)
    with pytest.raises(ValueError, match='control mode'):
        a.set_mode('chaos')
    with pytest.raises(ValueError, match='source'):
        a.accept('joystick', 0.0)
