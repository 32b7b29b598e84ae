"""The RLBench backend: a clear install error on this machine (real imports), and, against the FAKE RLBench/PyRep
in tests/fake_rlbench (CoppeliaSim cannot be installed here), the action/observation/reward mapping.

Every test that uses the `fake_rlbench` fixture runs against the FAKE only; none of them shows that the real
RLBench runs.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lamp_ros.contract import ACTION_SCALE_M
from sim.backends.rlbench import (TASKS, RLBenchNotInstalledError, make_rlbench_env, to_rlbench_action,
                                  validate_action)

FAKE_API_ROOT = Path(__file__).resolve().parent / 'fake_rlbench'
FAKE_TOP_LEVEL_MODULES = ('rlbench', 'pyrep', 'fake_coppeliasim')
IMAGE_SIZE = 32
INSTRUCTIONS = {'push_button': 'push the maroon button', 'turn_tap': 'turn left tap',
                'close_microwave': 'close microwave', 'pick_up_cup': 'pick up the red cup',
                'take_lid_off_saucepan': 'take lid off the saucepan'}


def forget_fake_modules() -> None:
    for name in list(sys.modules):
        if name.split('.')[0] in FAKE_TOP_LEVEL_MODULES:
            del sys.modules[name]


@pytest.fixture
def fake_rlbench(monkeypatch, tmp_path):
    """The FAKE rlbench/pyrep packages first on sys.path and a FAKE CoppeliaSim directory in the environment.

    Yields the FAKE simulator module (fake_coppeliasim); its SCENE is the one the backend's env drives.
    """
    root = tmp_path / 'FAKE_CoppeliaSim'
    root.mkdir()
    (root / 'libcoppeliaSim.so.1').write_bytes(b'FAKE library, never loaded')
    monkeypatch.setenv('COPPELIASIM_ROOT', str(root))
    monkeypatch.setenv('QT_QPA_PLATFORM_PLUGIN_PATH', str(root))
    forget_fake_modules()
    monkeypatch.syspath_prepend(str(FAKE_API_ROOT))
    import fake_coppeliasim
    import rlbench
    assert rlbench.FAKE and Path(rlbench.__file__).is_relative_to(FAKE_API_ROOT)
    yield fake_coppeliasim
    forget_fake_modules()


def fake_task_environment():
    """The FAKE TaskEnvironment the most recent env drives (it records the actions it received)."""
    return sys.modules['rlbench.environment'].FAKE_ENVIRONMENTS[-1].fake_task_environments[-1]


def make(task: str = 'push_button', **kwargs):
    return make_rlbench_env(task, image_size=IMAGE_SIZE, **kwargs)


def move_tip_to(env, goal: np.ndarray, gripper: float = 1.0, max_steps: int = 60):
    """Step toward `goal` with full-scale moves until the tip is there; returns the last step's result."""
    for _ in range(max_steps):
        tip = env.unwrapped._last_obs['state'][:3].astype(np.float64)
        delta = np.clip((goal - tip) / ACTION_SCALE_M, -1.0, 1.0)
        result = env.step(np.array([*delta, gripper], dtype=np.float32))
        if np.linalg.norm(goal - result[0]['state'][:3]) < 1e-4:
            return result
    raise AssertionError(f'tip did not reach {goal}')


# ---------------------------------------------------------------------------------------------- real imports


def test_construction_fails_without_coppeliasim_with_install_instructions(monkeypatch):
    monkeypatch.delenv('COPPELIASIM_ROOT', raising=False)
    with pytest.raises(RLBenchNotInstalledError) as caught:
        make_rlbench_env('push_button')
    message = str(caught.value)
    assert isinstance(caught.value, ImportError)
    assert 'COPPELIASIM_ROOT is not set' in message
    for needed in ('CoppeliaSim 4.1', 'CoppeliaSim_Edu_V4_1_0', 'export COPPELIASIM_ROOT', 'export LD_LIBRARY_PATH',
                   'export QT_QPA_PLATFORM_PLUGIN_PATH', 'pip install git+https://github.com/stepjam/PyRep.git',
                   'pip install git+https://github.com/stepjam/RLBench.git', "backend='mujoco'"):
        assert needed in message, needed
    if importlib.util.find_spec('rlbench') is None:                  # true on the build machine
        assert "python package 'rlbench' is not installed" in message


def test_construction_fails_when_coppeliasim_root_lacks_the_library(monkeypatch, tmp_path):
    monkeypatch.setenv('COPPELIASIM_ROOT', str(tmp_path))
    monkeypatch.delenv('QT_QPA_PLATFORM_PLUGIN_PATH', raising=False)
    with pytest.raises(RLBenchNotInstalledError, match='has no libcoppeliaSim.so.1') as caught:
        make_rlbench_env('turn_tap')
    assert 'QT_QPA_PLATFORM_PLUGIN_PATH is not set' in str(caught.value)


@pytest.mark.skipif(importlib.util.find_spec('pyrep') is not None, reason='PyRep is installed here')
def test_construction_fails_when_pyrep_is_missing_even_with_coppeliasim(monkeypatch, tmp_path):
    (tmp_path / 'libcoppeliaSim.so.1').write_bytes(b'FAKE library, never loaded')
    monkeypatch.setenv('COPPELIASIM_ROOT', str(tmp_path))
    monkeypatch.setenv('QT_QPA_PLATFORM_PLUGIN_PATH', str(tmp_path))
    with pytest.raises(RLBenchNotInstalledError, match="importing RLBench/PyRep failed: No module named 'pyrep'") \
            as caught:
        make_rlbench_env('close_microwave')
    assert isinstance(caught.value.__cause__, ImportError)
    assert 'github.com/stepjam/RLBench' in str(caught.value)


def test_bad_arguments_are_rejected_before_anything_is_imported():
    with pytest.raises(NotImplementedError, match='MuJoCo-only'):
        make_rlbench_env('pretrain')
    with pytest.raises(ValueError, match="unknown task 'open_drawer'"):
        make_rlbench_env('open_drawer')
    with pytest.raises(ValueError, match='image_size'):
        make_rlbench_env('push_button', image_size=0)
    with pytest.raises(ValueError, match='max_episode_steps'):
        make_rlbench_env('push_button', max_episode_steps=0)
    with pytest.raises(ValueError, match='reward_type'):
        make_rlbench_env('push_button', reward_type='dense')


def test_action_conversion_scales_keeps_orientation_caps_height_and_thresholds_gripper():
    start_z = 1.0
    converted = to_rlbench_action(np.array([1.0, -0.5, -1.0, 0.5]), tip_z=start_z, start_z=start_z)
    np.testing.assert_allclose(converted, [0.03, -0.015, -0.03, 0.0, 0.0, 0.0, 1.0, 1.0])
    assert to_rlbench_action(np.array([0.0, 0.0, 0.0, 0.4999]), start_z, start_z)[7] == 0.0
    np.testing.assert_allclose(to_rlbench_action(np.array([3.0, -3.0, 0.0, 1.0]), start_z, start_z)[:3],
                               [0.03, -0.03, 0.0])                               # clipped to [-1, 1]
    assert to_rlbench_action(np.array([0.0, 0.0, 1.0, 1.0]), tip_z=start_z, start_z=start_z)[2] == 0.0
    assert to_rlbench_action(np.array([0.0, 0.0, 0.5, 1.0]), tip_z=start_z - 0.02, start_z=start_z)[2] == \
        pytest.approx(0.015)
    # LAMP's rule: a step that would reach or pass the start height is dropped, not shortened.
    assert to_rlbench_action(np.array([0.0, 0.0, 1.0, 1.0]), tip_z=start_z - 0.02, start_z=start_z)[2] == 0.0


@pytest.mark.parametrize('bad, message', [([0.0, 0.0, np.nan, 1.0], 'finite'), ([0.0, np.inf, 0.0, 1.0], 'finite'),
                                          ([0.0, 0.0, 0.0], r'shape \(4,\)'), ([[0.0] * 4], r'shape \(4,\)')])
def test_bad_actions_raise_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_action(bad)


# ---------------------------------------------------------------------------------------------- against the FAKE


def test_env_configures_rlbench_as_lamp_did(fake_rlbench):
    from pyrep.const import RenderMode
    from rlbench.action_modes.action_mode import MoveArmThenGripper
    from rlbench.action_modes.arm_action_modes import EndEffectorPoseViaPlanning
    from rlbench.action_modes.gripper_action_modes import Discrete
    from rlbench.environment import FAKE_ENVIRONMENTS

    env = make('push_button', headless=True)
    (environment,) = FAKE_ENVIRONMENTS
    mode = environment.action_mode
    assert isinstance(mode, MoveArmThenGripper)
    assert isinstance(mode.arm_action_mode, EndEffectorPoseViaPlanning)
    assert mode.arm_action_mode._absolute_mode is False
    assert mode.arm_action_mode._collision_checking is False
    assert isinstance(mode.gripper_action_mode, Discrete)
    assert environment.headless is True and environment.shaped_rewards is False
    assert type(fake_task_environment()._task).__name__ == 'PushButton'

    config = environment.obs_config
    for name, camera in config.cameras().items():
        wanted = name in ('front', 'wrist')
        assert (camera.rgb, camera.depth, camera.point_cloud, camera.mask) == (wanted, False, False, False), name
    for camera in (config.front_camera, config.wrist_camera):
        assert camera.image_size == (IMAGE_SIZE, IMAGE_SIZE) and camera.render_mode is RenderMode.OPENGL
    assert config.gripper_pose and config.gripper_open
    assert not (config.joint_positions or config.joint_velocities or config.joint_forces or
                config.gripper_joint_positions or config.task_low_dim_state)

    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
    assert set(env.observation_space.spaces) == {'image_front', 'image_wrist', 'state'}
    for key in ('image_front', 'image_wrist'):
        assert env.observation_space[key].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert env.observation_space[key].dtype == np.uint8
    assert env.observation_space['state'].shape == (4,) and env.observation_space['state'].dtype == np.float32
    env.close()


def test_gymnasium_env_checker_passes(fake_rlbench):
    env = make('pick_up_cup', render_mode='rgb_array')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        check_env(env, skip_render_check=False)
    expected = ('infinity', 'not having a spec')      # unbounded state space; built without gymnasium.make
    unexpected = [str(w.message) for w in caught if not any(text in str(w.message) for text in expected)]
    assert not unexpected
    env.close()


@pytest.mark.parametrize('task', sorted(TASKS))
def test_reset_maps_observation_and_gives_the_instruction(fake_rlbench, task):
    env = make(task)
    obs, info = env.reset(seed=0)
    assert info == {'success': False, 'instruction': INSTRUCTIONS[task]}
    assert env.observation_space.contains(obs)
    scene = fake_rlbench.SCENE
    np.testing.assert_allclose(obs['state'], [*scene.tip_position, 1.0], rtol=1e-6)
    reference = fake_task_environment()._scene.get_observation()
    np.testing.assert_array_equal(obs['image_front'], reference.front_rgb)
    np.testing.assert_array_equal(obs['image_wrist'], reference.wrist_rgb)
    env.close()


def test_step_sends_the_converted_action_and_maps_the_result(fake_rlbench):
    env = make('push_button')
    obs, _ = env.reset(seed=1)
    start = obs['state'][:3].astype(np.float64)
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, -0.5, -1.0, 0.2], dtype=np.float32))
    sent = fake_task_environment().fake_received_actions
    np.testing.assert_allclose(sent[-1], [0.03, -0.015, -0.03, 0.0, 0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(obs['state'], [*(start + [0.03, -0.015, -0.03]), 0.0], atol=1e-6)
    np.testing.assert_allclose(fake_rlbench.SCENE.tip_quaternion, [0.0, 1.0, 0.0, 0.0])   # orientation kept
    assert (terminated, truncated) == (False, False)
    assert info == {'instruction': 'push the maroon button', 'planning_failed': False, 'success': False}
    assert isinstance(reward, float)

    env.step(np.array([0.0, 0.0, 0.5, 1.0]))           # 1.5 cm up: stays 1.5 cm below the start height
    env.step(np.array([0.0, 0.0, 1.0, 1.0]))           # would pass the start height: z step dropped
    np.testing.assert_allclose([a[2] for a in sent[-2:]], [0.015, 0.0])
    assert [a[7] for a in sent[-2:]] == [1.0, 1.0]
    env.close()


def test_bad_actions_reach_nothing(fake_rlbench):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match='finite'):
        env.step(np.array([np.nan, 0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match='shape'):
        env.step(np.zeros(7))
    assert fake_task_environment().fake_received_actions == []
    env.close()


def test_step_before_reset_is_refused(fake_rlbench):
    env = make()
    with pytest.raises(RuntimeError, match='reset'):
        env.step(np.zeros(4))
    env.close()


@pytest.mark.parametrize('error_type', ['ConfigurationPathError', 'IKError', 'InvalidActionError'])
def test_planning_failure_is_a_logged_no_op_not_a_crash(fake_rlbench, caplog, error_type):
    import pyrep.errors
    import rlbench.backend.exceptions
    error_class = getattr(pyrep.errors, error_type, None) or getattr(rlbench.backend.exceptions, error_type)

    env = make('close_microwave')
    env.reset(seed=0)
    before, reward_before, *_ = env.step(np.array([0.5, 0.0, -0.5, 1.0]))
    fake_rlbench.SCENE.planning_failures.append(error_class('FAKE: no path found'))
    tip_before = fake_rlbench.SCENE.tip_position.copy()
    with caplog.at_level(logging.WARNING, logger='sim.backends.rlbench'):
        obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0, -0.5, 1.0]))
    np.testing.assert_array_equal(fake_rlbench.SCENE.tip_position, tip_before)
    for key in obs:
        np.testing.assert_array_equal(obs[key], before[key])
    assert reward == reward_before
    assert (terminated, truncated, info['success'], info['planning_failed']) == (False, False, False, True)
    assert info['planning_error'] == f'{error_type}: FAKE: no path found'
    assert 'could not execute action' in caplog.text
    obs, *_ , info = env.step(np.array([0.5, 0.0, -0.5, 1.0]))         # the next step moves again
    assert not info['planning_failed'] and obs['state'][0] > before['state'][0]
    env.close()


def test_target_outside_the_workspace_is_handled_like_lamp(fake_rlbench):
    env = make()
    env.reset(seed=0)
    fake_rlbench.SCENE.tip_position[0] = 0.79           # near the FAKE workspace's +x edge
    _, _, terminated, _, info = env.step(np.array([1.0, 0.0, 0.0, 1.0]))
    assert info['planning_failed'] and info['planning_error'].startswith('InvalidActionError')
    assert not terminated
    env.close()


def test_episode_truncates_at_max_episode_steps_and_never_terminates(fake_rlbench):
    env = make('turn_tap')
    env.reset(seed=0)
    flags = [env.step(np.zeros(4, dtype=np.float32))[2:4] for _ in range(150)]
    assert all(terminated is False for terminated, _ in flags)
    assert [truncated for _, truncated in flags] == [False] * 149 + [True]
    with pytest.raises(RuntimeError, match='reset'):
        env.step(np.zeros(4))
    env.reset()
    assert env.step(np.zeros(4))[3] is False
    env.close()


def test_reset_is_reproducible_under_a_seed(fake_rlbench):
    env = make('pick_up_cup')
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first['image_wrist'], other['image_wrist'])    # object placement followed the seed
    env.close()


def test_success_comes_from_rlbench_and_sparse_reward_sticks(fake_rlbench):
    env = make('push_button', reward_type='sparse')
    env.reset(seed=2)
    button = fake_rlbench.SCENE.objects['push_button_target'].position.copy()
    _, reward, _, _, info = move_tip_to(env, button)
    assert info['success'] is True and reward == 1.0                       # FAKE rule: tip at the button
    _, reward, _, _, info = env.step(np.array([-1.0, 0.0, 0.0, 1.0]))
    assert info['success'] is False and reward == 1.0                      # LAMP: float(success so far)
    env.reset(seed=2)
    assert env.step(np.zeros(4))[1] == 0.0
    env.close()


def test_shaped_rewards_follow_lamps_fork(fake_rlbench):
    scene = fake_rlbench.SCENE
    from pyrep.objects.joint import Joint

    env = make('push_button')
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(4))
    distance = np.linalg.norm(scene.objects['push_button_target'].position - scene.tip_position)
    assert reward == pytest.approx(-distance - 10.0 * 0.003)
    Joint('target_button_joint').set_joint_position(0.004)                  # pressed past 3 mm
    assert env.step(np.zeros(4))[1] == pytest.approx(-distance)
    env.close()

    env = make('turn_tap')
    env.reset(seed=0)
    reward_at_rest = env.step(np.zeros(4))[1]
    Joint('left_joint').set_joint_position(-0.5)                            # turned half a radian
    assert env.step(np.zeros(4))[1] == pytest.approx(reward_at_rest + 0.5)
    env.close()

    env = make('close_microwave')
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(4))
    distance = np.linalg.norm(scene.objects['microwave_door'].position - scene.tip_position)
    assert reward == pytest.approx(-distance - 1.2)                         # FAKE door starts 1.2 rad open
    Joint('microwave_door_joint').set_joint_position(0.2)
    assert env.step(np.zeros(4))[1] == pytest.approx(-distance - 0.2)
    env.close()


@pytest.mark.parametrize('task, shape', [('pick_up_cup', 'cup1'), ('take_lid_off_saucepan', 'saucepan_lid_grasp_point')])
def test_grasp_then_lift_reward_rises_toward_success(fake_rlbench, task, shape):
    scene = fake_rlbench.SCENE
    env = make(task)
    env.reset(seed=3)
    reset_reward = env.step(np.zeros(4))[1]
    distance = np.linalg.norm(scene.objects[shape].position - scene.tip_position)
    assert reset_reward == pytest.approx(np.exp(-distance))

    _, near_reward, *_ = move_tip_to(env, scene.objects[shape].position.copy())
    assert near_reward == pytest.approx(1.0) and near_reward > reset_reward  # exp(0): at the object, not grasped
    _, grasped_reward, *_ = env.step(np.array([0.0, 0.0, 0.0, 0.0]))       # close: FAKE grasp
    assert scene.grasped == [shape]
    goal = scene.objects['success'].position
    assert grasped_reward == pytest.approx(1.0 + np.exp(-np.linalg.norm(scene.objects[shape].position - goal)))
    _, lifted_reward, *_ = env.step(np.array([0.0, 0.0, 1.0, 0.0]))        # lift toward the success sensor
    assert lifted_reward > grasped_reward > near_reward
    env.close()


def test_render_returns_the_front_image(fake_rlbench):
    env = make(render_mode='rgb_array')
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs['image_front'])
    env.close()


def test_close_shuts_rlbench_down_once(fake_rlbench):
    from rlbench.environment import FAKE_ENVIRONMENTS

    env = make()
    env.reset(seed=0)
    assert fake_rlbench.SCENE.running
    env.close()
    env.close()
    (environment,) = FAKE_ENVIRONMENTS
    assert environment.fake_shutdown_count == 1 and not fake_rlbench.SCENE.running
