"""Episodes for imitation: the scripted expert labels every state; the expert (with noise) or the student drives.

One shard = one task, a list of seeds, one driver. It runs in a worker process (torch single-threaded, no
shared state) and returns flat per-step arrays, which the caller writes to disk atomically:

    image    uint8 [N, H, W, 3]   the front camera the policy sees
    state    float32 [N, S]       sim.STATE_KEYS
    label    float32 [N, 4]       the expert's clean action, gripper as -1 (closed) / +1 (open)
    focus    float32 [N, 3]       the task's focus point (auxiliary target, training only)
    phrase   int16 [N]            index into the task's phrases
    episode  int32 [N]            the seed of each step's episode
    success  bool [E]             per episode: did it succeed (the driver's success, not the expert's)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import sim
from lamp_ros.contract import GRIPPER_OPEN_THRESHOLD
from sim.config import SceneConfig
from sim.env import state_bounds
from sim.experts import make_expert, noisy_action
from sim.tasks import DOWNSTREAM_TASKS

FOCUS: dict[str, Callable[[Any], np.ndarray]] = {
    'push_button': lambda task: task.button_top(),
    'turn_tap': lambda task: task.lever_tip(),
    'close_microwave': lambda task: task.push_point(),
    'pick_up_cup': lambda task: task.grasp_point(),
    'take_lid_off_saucepan': lambda task: task.grasp_point(),
}
"""The point each task's approach reward pulls the TCP to: what the auxiliary head learns to find in the image."""

WORKSPACE = tuple(bound[:3] for bound in state_bounds(SceneConfig()))
"""(low, high) of the TCP's reachable box: a focus point outside it means the object left the table."""


def in_workspace(points: np.ndarray) -> np.ndarray:
    """Per row of points [..., 3]: inside the workspace box. Outside, the object fell off the table (or
    through the floor): the expert chases the unreachable and its labels teach nothing."""
    low, high = WORKSPACE
    return np.all((points >= low) & (points <= high), axis=-1)


@dataclass(frozen=True)
class ShardSpec:
    task: str
    seeds: tuple[int, ...]
    image_size: int
    render_scale: int
    max_steps: int
    steps_after_success: int
    phrases: tuple[int, ...]                     # phrase indices this shard may use (one drawn per episode)
    embeddings: dict[int, np.ndarray]            # phrase index -> instruction embedding (student driver)
    noise_std: float = 0.0                       # expert driver: N(0, noise_std) on motion ...
    noisy_fraction: float = 0.0                  # ... in this fraction of episodes
    student: dict[str, Any] | None = None        # {'config': AgentConfig, 'weights': state_dict}: DAgger


def expert_label(action: np.ndarray) -> np.ndarray:
    """The expert's action as a regression target: motion as is, gripper mapped to -1 / +1 (a margin either
    side of the env's 0.5 threshold)."""
    label = np.asarray(action, np.float32).copy()
    label[3] = 1.0 if action[3] >= GRIPPER_OPEN_THRESHOLD else -1.0
    return label


def _student_driver(student: dict[str, Any]) -> Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]:
    import torch

    from training.policy import PolicyNet
    torch.set_num_threads(1)
    policy = PolicyNet(student['config'])
    policy.load_state_dict(student['weights'])
    policy.eval()

    def act(obs: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            action = policy(torch.from_numpy(obs['image_front'])[None], torch.from_numpy(obs['state'])[None],
                            torch.from_numpy(embedding)[None])
        return action[0].numpy()
    return act


def run_shard(spec: ShardSpec) -> dict[str, np.ndarray]:
    """Play the shard's episodes; every visited state gets the expert's label."""
    env = sim.make(spec.task, image_size=spec.image_size, render_scale=spec.render_scale, randomize=True,
                   cameras=('front',),
                   max_episode_steps=spec.max_steps)
    student = _student_driver(spec.student) if spec.student is not None else None
    focus = FOCUS[spec.task]
    columns: dict[str, list[Any]] = {k: [] for k in ('image', 'state', 'label', 'focus', 'phrase', 'episode')}
    successes = []
    for seed in spec.seeds:
        rng = np.random.default_rng([seed, 7])
        phrase = int(rng.choice(spec.phrases))
        noisy = spec.student is None and rng.random() < spec.noisy_fraction
        obs, _ = env.reset(seed=seed)
        scene, expert = env.unwrapped.scene, make_expert(spec.task)
        expert.reset()
        succeeded_at = None
        for t in range(spec.max_steps):
            point = focus(scene.task)
            if not in_workspace(point):
                break
            label = expert.act(scene)
            for key, value in (('image', obs['image_front']), ('state', obs['state']), ('label', expert_label(label)),
                               ('focus', point), ('phrase', phrase), ('episode', seed)):
                columns[key].append(value)
            if student is not None:
                action = student(obs, spec.embeddings[phrase])
            else:
                action = noisy_action(label, spec.noise_std, rng) if noisy else label
            obs, _, _, _, info = env.step(action)
            if info['success'] and succeeded_at is None:
                succeeded_at = t
            if succeeded_at is not None and t - succeeded_at >= spec.steps_after_success:
                break
        successes.append(succeeded_at is not None)
    env.close()
    return {'image': np.stack(columns['image']), 'state': np.stack(columns['state']).astype(np.float32),
            'label': np.stack(columns['label']).astype(np.float32),
            'focus': np.stack(columns['focus']).astype(np.float32),
            'phrase': np.array(columns['phrase'], np.int16), 'episode': np.array(columns['episode'], np.int32),
            'success': np.array(successes, bool)}


def task_phrases(task: str) -> tuple[str, ...]:
    return DOWNSTREAM_TASKS[task].phrases
