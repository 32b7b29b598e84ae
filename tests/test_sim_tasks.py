"""The tasks (sim/tasks/): experts solve them, rewards rise toward success, the pretraining scene's objects."""
from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.experts import make_expert, run_episode
from sim.instructions import InstructionSampler
from sim.privileged import OFFSET_CLIP, PRIVILEGED_DIM, privileged_state

MAX_STEPS = 60          # the experts need 9-17 steps; the test stops at the first success
PERTURB_STEPS = 8       # random actions before the expert takes over


def run_until_success(task: str, seed: int) -> tuple[float, float, bool, bool]:
    """(reward at reset, reward at success, success at reset, succeeded) of an expert episode."""
    env = sim.make(task, image_size=16)
    env.reset(seed=seed)
    scene = env.unwrapped.scene
    expert = make_expert(task)
    expert.reset()
    reset_reward, reset_success = scene.reward(), scene.success()
    reward, succeeded = reset_reward, False
    for _ in range(MAX_STEPS):
        _, reward, _, _, info = env.step(expert.act(scene))
        if info['success']:
            succeeded = True
            break
    env.close()
    return reset_reward, reward, reset_success, succeeded


@pytest.mark.parametrize('task', sim.DOWNSTREAM_TASK_NAMES)
@pytest.mark.parametrize('seed', [0, 101])
def test_expert_succeeds_and_reward_is_higher_at_success_than_at_reset(task: str, seed: int) -> None:
    reset_reward, success_reward, reset_success, succeeded = run_until_success(task, seed)
    assert not reset_success
    assert succeeded, f'{task} expert failed on seed {seed}'
    assert success_reward > reset_reward + 0.5           # approach term ~0.8 at reset; progress adds up to 1


@pytest.mark.parametrize('task', sim.DOWNSTREAM_TASK_NAMES)
def test_expert_is_markov_a_fresh_one_acts_like_a_long_running_one(task: str) -> None:
    """DAgger relabels any state with a fresh query: the action may depend on the current state only."""
    env = sim.make(task, image_size=16)
    env.reset(seed=3)
    scene = env.unwrapped.scene
    running = make_expert(task)
    running.reset()
    for _ in range(30):
        action = running.act(scene)
        np.testing.assert_array_equal(make_expert(task).act(scene), action)
        np.testing.assert_array_equal(running.act(scene), action)        # asking twice changes nothing
        if env.step(action)[4]['success']:
            break
    env.close()


@pytest.mark.parametrize('task', sim.DOWNSTREAM_TASK_NAMES)
@pytest.mark.parametrize('seed', [7, 8])
def test_expert_recovers_from_a_perturbed_start(task: str, seed: int) -> None:
    """After random actions (arm displaced, gripper in either state) the expert still solves the task."""
    env = sim.make(task, image_size=16)
    env.reset(seed=seed)
    scene = env.unwrapped.scene
    rng = np.random.default_rng(seed)
    for _ in range(PERTURB_STEPS):
        env.step(rng.uniform(-1.0, 1.0, 4).astype(np.float32))
    expert = make_expert(task)
    succeeded = any(env.step(expert.act(scene))[4]['success'] for _ in range(MAX_STEPS))
    env.close()
    assert succeeded, f'{task} expert failed after {PERTURB_STEPS} random steps (seed {seed})'


def test_noisy_execution_records_clean_labels() -> None:
    env = sim.make('push_button', image_size=16)
    steps: list[dict] = []
    result = run_episode(env, make_expert('push_button'), seed=0, action_noise=0.3, noisy_fraction=1.0,
                         rng=np.random.default_rng(0), on_step=lambda obs, reward, info: steps.append(info))
    env.close()
    assert result.success and result.noisy
    labels = np.array([info['expert_action'] for info in steps[1:]])
    executed = np.array([info['executed_action'] for info in steps[1:]])
    assert np.all(np.abs(executed) <= 1.0) and np.array_equal(labels[:, 3], executed[:, 3])
    assert np.abs(labels[:, :3] - executed[:, :3]).mean() > 0.1        # noise on the motion dims only


def test_random_actions_rarely_succeed() -> None:
    env = sim.make('pick_up_cup', image_size=16)
    env.reset(seed=0)
    env.action_space.seed(0)
    successes = [env.step(env.action_space.sample())[4]['success'] for _ in range(40)]
    env.close()
    assert not any(successes)


@pytest.mark.parametrize('task', sim.DOWNSTREAM_TASK_NAMES)
def test_privileged_state_points_the_tcp_at_the_focus_point(task: str) -> None:
    """sim.privileged (the sim-only critic's input): the focus point's offset from the TCP shrinks as the expert
    approaches it, and its last entry is the task's reward."""
    env = sim.make(task, image_size=16, cameras=('front',))
    env.reset(seed=3)
    scene = env.unwrapped.scene
    expert = make_expert(task)
    first = privileged_state(scene)
    for _ in range(6):
        env.step(expert.act(scene))
    now = privileged_state(scene)
    env.close()
    assert first.shape == now.shape == (PRIVILEGED_DIM,) and np.all(np.abs(now[:6]) <= OFFSET_CLIP)
    assert np.linalg.norm(now[3:6]) < np.linalg.norm(first[3:6])
    assert now[6] == pytest.approx(scene.reward())


def test_reward_grows_as_the_button_goes_down() -> None:
    env = sim.make('push_button', image_size=16)
    env.reset(seed=0)
    scene = env.unwrapped.scene
    expert = make_expert('push_button')
    expert.reset()
    rewards, depths = [], []
    for _ in range(12):
        _, reward, _, _, _ = env.step(expert.act(scene))
        rewards.append(reward)
        depths.append(scene.task.depth())
    env.close()
    pressed = [r for r, d in zip(rewards, depths) if d > 0.005]
    hovering = [r for r, d in zip(rewards, depths) if d < 0.001]
    assert pressed and hovering and min(pressed) > max(hovering)


def test_pretraining_scene_places_separate_objects_and_names_the_target() -> None:
    env = sim.make('pretrain', image_size=16, num_objects=3)
    sampler = InstructionSampler()
    for seed in range(3):
        _, info = env.reset(seed=seed)
        task = env.unwrapped.scene.task
        positions = [p[:2] for p in task.rest_positions]
        assert len(positions) == 3
        assert min(np.linalg.norm(a - b) for i, a in enumerate(positions) for b in positions[i + 1:]) > 0.05
        assert len({entry.category for entry in task.objects}) == 3
        assert any(name in info['instruction'] for name in sampler.synonyms(task.target_category))
    env.close()


def test_pretraining_instructions_cycle_through_all_templates() -> None:
    env = sim.make('pretrain', image_size=16, prompt_style='single')
    env.reset(seed=0)
    assert env.unwrapped.instruction.startswith('pick up the ')
    env.close()
    env = sim.make('pretrain', image_size=16, num_objects=1)
    sampler = InstructionSampler()
    env.reset(seed=9)
    used = set()
    for _ in range(len(sampler.templates)):
        instruction = env.unwrapped.instruction
        matches = [t for t in sampler.templates if _fits(t, instruction)]
        assert matches, instruction
        used.update(matches)
        env.reset()
    env.close()
    assert len(used) == len(sampler.templates)


def _fits(template: str, instruction: str) -> bool:
    head, tail = template.split('[NOUN]')
    return instruction.startswith(head) and instruction.endswith(tail) and len(instruction) > len(head) + len(tail)
