"""The gymnasium environments (sim/env.py): API conformance, seeding, randomization, actions."""
from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from lamp_ros import contract
from sim.env import LampEnv

SIZE = 48


@pytest.fixture(scope='module')
def env() -> Iterator[gymnasium.Env]:
    env = sim.make('push_button', image_size=SIZE)
    yield env
    env.close()


def test_every_task_is_registered_under_its_id_and_snake_case_name() -> None:
    assert list(sim.ENV_IDS.values()) == ['lamp/PushButton-v0', 'lamp/TurnTap-v0', 'lamp/CloseMicrowave-v0',
                                          'lamp/PickUpCup-v0', 'lamp/TakeLidOffSaucepan-v0', 'lamp/Pretrain-v0']
    for name, env_id in sim.ENV_IDS.items():
        assert env_id in gymnasium.registry
        assert gymnasium.registry[env_id].max_episode_steps == 150
        assert sim.env_id(name) == env_id == sim.env_id(env_id)
    with pytest.raises(ValueError, match='unknown task'):
        sim.make('fold_laundry')


@pytest.mark.parametrize('task', ['take_lid_off_saucepan', 'pretrain'])
def test_gymnasium_env_checker_passes(task: str) -> None:
    env = gymnasium.make(sim.env_id(task), image_size=32, render_mode='rgb_array')
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_spaces_and_observation_layout(env: gymnasium.Env) -> None:
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    observation, info = env.reset(seed=0)
    assert observation['image_front'].shape == observation['image_wrist'].shape == (SIZE, SIZE, 3)
    assert observation['image_front'].dtype == np.uint8 and observation['image_front'].std() > 5
    assert observation['state'].dtype == np.float32 and observation['state'].shape == (4,)
    assert sim.STATE_KEYS == ('ee_x', 'ee_y', 'ee_z', 'gripper_opening')
    assert set(sim.STATE_KEYS) <= set(contract.STATE_KEYS)
    scene = env.unwrapped.scene
    assert observation['state'] == pytest.approx([*scene.ee_position(), scene.gripper_opening()], abs=1e-6)
    assert info['instruction'] == 'push button' and info['success'] is False and info['task'] == 'push_button'


def test_non_square_images_and_unknown_options() -> None:
    env = sim.make('turn_tap', image_size=(32, 48))
    observation, _ = env.reset(seed=0)
    assert observation['image_wrist'].shape == (32, 48, 3)
    env.close()
    with pytest.raises(TypeError, match='camera_count'):
        sim.make('turn_tap', camera_count=3)


def test_same_seed_gives_identical_episodes() -> None:
    first, second = sim.make('pick_up_cup', image_size=32), sim.make('pick_up_cup', image_size=32)
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 4))
    runs = []
    for env in (first, second, first):                     # two envs, and one env reused
        observation, info = env.reset(seed=11)
        trace = [observation, info['instruction']]
        for action in actions:
            observation, reward, *_ = env.step(action)
            trace += [observation, reward]
        runs.append(trace)
    for run in runs[1:]:
        for value, reference in zip(run, runs[0]):
            if isinstance(value, dict):
                for key in value:
                    np.testing.assert_array_equal(value[key], reference[key])
            else:
                assert value == reference
    first.close()
    second.close()


def test_seeded_reset_then_unseeded_resets_are_a_reproducible_sequence(env: gymnasium.Env) -> None:
    sequences = []
    for _ in range(2):
        env.reset(seed=5)
        sequences.append([env.reset()[0]['image_front'] for _ in range(2)])
    for a, b in zip(*sequences):
        np.testing.assert_array_equal(a, b)
    assert np.abs(sequences[0][0].astype(int) - sequences[0][1].astype(int)).mean() > 3


def mean_pixel_change(task: str, randomize: bool) -> float:
    env = sim.make(task, image_size=SIZE, randomize=randomize)
    images = [env.reset(seed=seed)[0]['image_front'].astype(int) for seed in (1, 2)]
    env.close()
    return float(np.abs(images[0] - images[1]).mean())


def test_randomization_changes_pixels_across_episodes() -> None:
    randomized, fixed = mean_pixel_change('push_button', True), mean_pixel_change('push_button', False)
    assert randomized > 15.0                           # textures, lights, camera all change
    assert fixed < 5.0                                 # only the button moves
    assert randomized > 4 * fixed


def test_action_moves_three_centimetres_per_step_and_sets_the_gripper(env: gymnasium.Env) -> None:
    env.reset(seed=0)
    scene = env.unwrapped.scene
    env.step(np.array([1.0, 0.0, 0.0, 1.0]))             # from rest
    start = scene.ee_position()
    for _ in range(3):
        env.step(np.array([1.0, 0.0, 0.0, 1.0]))
    assert scene.ee_position()[0] - start[0] == pytest.approx(0.09, abs=0.004)
    assert scene.gripper_opening() > 0.95
    for _ in range(4):
        env.step(np.array([0.0, 0.0, 0.0, 0.49]))        # < 0.5 closes
    assert scene.gripper_opening() < 0.05


def test_out_of_range_actions_are_clipped() -> None:
    positions = []
    for action in ([1.0, -1.0, 0.0, 1.0], [7.0, -3.0, 0.0, 2.0]):
        env = sim.make('push_button', image_size=32)
        env.reset(seed=2)
        for _ in range(3):
            env.step(np.array(action))
        positions.append(env.unwrapped.scene.ee_position())
        env.close()
    np.testing.assert_allclose(positions[0], positions[1], atol=1e-9)


@pytest.mark.parametrize('action, problem', [
    ([np.nan, 0, 0, 1], 'finite'), ([0, np.inf, 0, 1], 'finite'), ([0.1, 0, 0], r'shape \(4,\)'),
    ([[0.1, 0, 0, 1]], r'shape \(4,\)')])
def test_bad_actions_raise_a_clear_error(env: gymnasium.Env, action: list, problem: str) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match=problem):
        env.step(np.array(action, dtype=np.float64))


def test_env_step_moves_the_arm_as_the_safety_layer_and_sim_arm_do() -> None:
    """The ROS path (the safety filter's velocity -> sim_arm -> apply_velocity) moves the arm as env.step does:
    same speed and acceleration limits (a diagonal is no faster in training than on the graph)."""
    from lamp_ros.core.safety import SafetyConfig, SafetyFilter
    actions = np.random.default_rng(1).uniform(-1, 1, (12, 4))
    actions[:4, :3] = [[1, 1, -1], [-1, -1, 1], [1, -1, 1], [0, 0, 0]]      # speed and acceleration limits bind
    gym_env, ros_like = sim.make('turn_tap', image_size=32, control_dt=0.05), sim.make('turn_tap', image_size=32)
    gym_env.reset(seed=4)
    ros_like.reset(seed=4)
    scene = ros_like.unwrapped.scene
    safety = SafetyFilter(SafetyConfig(control_rate_hz=20.0, workspace_min=(-9.0, -9.0, -9.0),
                                       workspace_max=(9.0, 9.0, 9.0), startup_hold_s=0.0), start_t=0.0)
    for k, action in enumerate(actions):
        t = 1.0 + 0.05 * k
        safety.on_image(t)
        safety.on_ee_pose(t, scene.ee_position())
        safety.on_action(t, action)
        command = safety.command(t)
        assert not command.stopped, command.reasons
        gym_env.step(action)
        scene.apply_velocity(command.velocity, bool(action[3] >= 0.5), 0.05)
        np.testing.assert_allclose(gym_env.unwrapped.scene.ee_position(), scene.ee_position(), atol=1e-9)
    assert contract.MAX_SPEED_MPS == SafetyConfig().max_speed_mps and contract.MAX_ACCEL_MPS2 == SafetyConfig().max_accel_mps2
    gym_env.close()
    ros_like.close()


def test_episodes_end_after_150_steps_and_optionally_at_success() -> None:
    env = sim.make('push_button', image_size=16)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(4))
        steps += 1
        assert not terminated
    assert steps == 150
    env.close()
    assert LampEnv(task='push_button', terminate_on_success=True, image_size=16).terminate_on_success


def test_paraphrased_instructions_come_from_the_task_phrases() -> None:
    env = sim.make('close_microwave', image_size=16, paraphrase_instructions=True)
    phrases = {env.reset(seed=seed)[1]['instruction'] for seed in range(12)}
    env.close()
    task_phrases = set(env.unwrapped.scene.task.phrases)
    assert len(phrases) > 1 and phrases <= task_phrases and 'close microwave' in task_phrases


def test_rlbench_backend_is_built_lazily_with_the_same_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType('sim.backends.rlbench')           # a named fake: CoppeliaSim cannot exist here
    fake.make_rlbench_env = lambda task, image_size, **kwargs: calls.append((task, image_size, kwargs)) or 'fake-env'
    monkeypatch.setitem(sys.modules, 'sim.backends.rlbench', fake)
    from sim.env import make_env
    assert make_env('turn_tap', backend='rlbench', image_size=64, reward_type='sparse') == 'fake-env'
    assert calls == [('turn_tap', 64, {'reward_type': 'sparse'})]
    with pytest.raises(ValueError, match='unknown backend'):
        make_env('turn_tap', backend='isaac')


def test_render_scale_is_an_area_resize_of_a_larger_render_and_cameras_can_be_chosen() -> None:
    """render_scale 2 at 32x32 is the 64x64 picture area-resized, as the policy node resizes camera frames."""
    import cv2
    big = sim.make('push_button', image_size=64)
    scaled = sim.make('push_button', image_size=32, render_scale=2, cameras=('front',))
    big_obs, _ = big.reset(seed=3)
    obs, _ = scaled.reset(seed=3)
    assert set(obs) == {'image_front', 'state'} and obs['image_front'].shape == (32, 32, 3)
    np.testing.assert_array_equal(obs['image_front'],
                                  cv2.resize(big_obs['image_front'], (32, 32), interpolation=cv2.INTER_AREA))
    big.close()
    scaled.close()
    with pytest.raises(ValueError, match='render_scale'):
        sim.make('push_button', render_scale=0)
    with pytest.raises(ValueError, match='cameras'):
        sim.make('push_button', cameras=('side',))


def test_a_step_reports_the_action_as_applied_within_the_speed_limit(env: gymnasium.Env) -> None:
    """What the safety layer reports on the robot: a diagonal full action moves at the speed limit, not 1.7x it."""
    env.reset(seed=3)
    _, _, _, _, info = env.step(np.array([1.0, 1.0, 1.0, 1.0]))
    applied = info['applied_action']
    assert applied.dtype == np.float32 and applied[3] == 1.0
    assert np.linalg.norm(applied[:3]) == pytest.approx(1.0, abs=1e-5) and np.allclose(applied[0], applied[1:3])
