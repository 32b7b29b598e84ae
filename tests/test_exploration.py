"""The robot's exploration noise while finetuning: as the sim trainer's (std on the motion, a fraction of it on
the gripper, kept in [-1, 1]); none when deploying; bad settings refused with the reason."""
import numpy as np
import pytest

from lamp_ros.core.exploration import ActionNoise


def test_noise_has_the_std_on_the_motion_leaves_the_gripper_and_stays_in_range():
    noise = ActionNoise(0.2, seed=0)
    action = np.array([0.0, 0.5, 0.95, 1.0], np.float32)
    samples = np.stack([noise(action) for _ in range(4000)])
    assert samples.dtype == np.float32 and samples.min() >= -1.0 and samples.max() <= 1.0
    assert np.allclose(samples[:, :2].std(axis=0), 0.2, atol=0.01)
    assert np.allclose(samples[:, :2].mean(axis=0), action[:2], atol=0.01)
    assert samples[:, 2].max() == 1.0, 'clipped at the range, not wrapped'
    assert (samples[:, 3] == 1.0).all(), 'the gripper follows the policy'
    half = ActionNoise(0.2, gripper_fraction=0.5, seed=1)
    gripper = [half(np.zeros(4, np.float32))[3] for _ in range(4000)]
    assert abs(np.std(gripper) - 0.1) < 0.01, 'a fraction of the motion noise on the gripper'


def test_no_noise_when_deploying_and_bad_settings_are_refused():
    action = np.array([0.1, -0.2, 0.3, 1.0], np.float32)
    assert ActionNoise(0.0)(action) is action and not ActionNoise(0.0).active
    with pytest.raises(ValueError, match='explore_std must be in'):
        ActionNoise(-0.1)
    with pytest.raises(ValueError, match='explore_gripper must be in'):
        ActionNoise(0.2, gripper_fraction=2.0)


def test_a_schedule_sets_a_new_std_and_keeps_the_grippers_fraction():
    noise = ActionNoise(1.0, gripper_fraction=0.5, seed=2)
    noise.set_std(0.1)                                     # a pretraining robot: the learner's decayed std
    samples = np.stack([noise(np.zeros(4, np.float32)) for _ in range(4000)])
    assert np.allclose(samples.std(axis=0), [0.1, 0.1, 0.1, 0.05], atol=0.01)
    with pytest.raises(ValueError, match='explore_std must be in'):
        noise.set_std(1.5)
