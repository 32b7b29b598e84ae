"""Episodes for imitation: the scripted expert labels every state; the expert (with noise) or the student drives.

One shard = one task, a list of seeds, one driver. It runs in a worker process (torch single-threaded, no
shared state) and returns flat per-step arrays, which the caller writes to disk atomically:

    image    uint8 [N, H, W, 3]   the front camera the policy sees
    image_<camera>  uint8 [N, H, W, 3]   each further camera the policy sees (e.g. image_wrist)
    state    float32 [N, S]       sim.STATE_KEYS
    label    float32 [N, 4]       the expert's clean action, gripper as -1 (closed) / +1 (open)
    focus    float32 [N, 3]       the task's focus point (auxiliary target, training only)
    phrase   int16 [N]            index into the task's phrases
    episode  int32 [N]            the seed of each step's episode
    success  bool [E]             per episode: did it succeed (the driver's success, not the expert's)
    seeds    int32 [E]            per episode: its seed (the shard's seeds, in order)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import sim
from lamp_ros.contract import GRIPPER_OPEN_THRESHOLD
from models.bundle import camera_input
from sim.config import SceneConfig
from sim.env import state_bounds
from sim.experts import OPEN_OPENING, Expert, PickExpert, make_expert, noisy_action


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
    embeddings: np.ndarray                       # [training phrase, embedding]: one drawn per episode (its index
                                                 # is recorded; the student driver acts on the embedding)
    noise_std: float = 0.0                       # expert driver: N(0, noise_std) on motion ...
    noisy_fraction: float = 0.0                  # ... in this fraction of episodes
    student: dict[str, Any] | None = None        # {'config': AgentConfig, 'weights': state_dict}: DAgger
    fumble_fraction: float = 0.0                 # expert driver: episodes with one scripted mistake (Fumble)
    cameras: tuple[str, ...] = ('front',)         # recorded: the policy's cameras, front first


def expert_label(action: np.ndarray) -> np.ndarray:
    """The expert's action as a regression target: motion as is, gripper mapped to -1 / +1 (a margin either
    side of the env's 0.5 threshold)."""
    label = np.asarray(action, np.float32).copy()
    label[3] = 1.0 if action[3] >= GRIPPER_OPEN_THRESHOLD else -1.0
    return label


FUMBLE_RADIUS_M = (0.015, 0.04)   # a fumble's localisation error in the table plane: beyond the grasp tolerances


class ShiftedScene:
    """The scene as a student with a localisation error sees it: the TCP seems `offset` from where it is."""

    def __init__(self, scene: Any, offset: np.ndarray) -> None:
        self._scene, self._offset = scene, offset

    def ee_position(self) -> np.ndarray:
        return self._scene.ee_position() + self._offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scene, name)


@dataclass(frozen=True)
class Fumble:
    """One scripted missed grasp of the kind the cloned policy makes, for the expert to recover from in a demo.

    For `steps` steps from step `start` the expert drives as if the TCP were `offset` from where it is (it
    comes down beside the object and closes on nothing). Then fingers closed on nothing rise for up to
    `lift` steps, as a policy that believes it holds the object does. The recorded labels stay the
    expert's own, so the demos teach the way back (open, rise, come again), which clean demos never
    visit. Pick tasks only: on push_button and turn_tap such demos made the policy worse
    (docs/training.md), whose expert labels change abruptly near the button and the lever.
    """
    expert: PickExpert
    start: int
    steps: int
    offset: np.ndarray
    lift: int

    @classmethod
    def draw(cls, expert: PickExpert, rng: np.random.Generator) -> Fumble:
        angle, radius = rng.uniform(0.0, 2 * np.pi), rng.uniform(*FUMBLE_RADIUS_M)
        offset = np.array([radius * np.cos(angle), radius * np.sin(angle), rng.uniform(-0.01, 0.01)])
        return cls(expert, int(rng.integers(0, 8)), int(rng.integers(8, 19)), offset, int(rng.integers(0, 9)))

    def action(self, t: int, scene: Any) -> np.ndarray | None:
        """The mistaken action at step t, or None where the expert itself drives."""
        end = self.start + self.steps
        if self.start <= t < end:
            return self.expert.act(ShiftedScene(scene, self.offset))
        closed_on_nothing = scene.gripper_opening() < OPEN_OPENING and not self.expert.grasped(scene)
        if end <= t < end + self.lift and closed_on_nothing:
            return np.array([0.0, 0.0, 1.0, 0.0], np.float32)
        return None


def _student_driver(student: dict[str, Any]) -> Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]:
    import torch

    from training.policy import PolicyNet
    torch.set_num_threads(1)
    policy = PolicyNet(student['config'])
    policy.load_state_dict(student['weights'])
    policy.eval()

    def act(obs: dict[str, np.ndarray], embedding: np.ndarray) -> np.ndarray:
        extra = [torch.from_numpy(obs[f'image_{c}'])[None] for c in policy.extra_cameras]
        with torch.inference_mode():
            action = policy(torch.from_numpy(obs['image_front'])[None], torch.from_numpy(obs['state'])[None],
                            torch.from_numpy(embedding)[None], *extra)
        return action[0].numpy()
    return act


def run_shard(spec: ShardSpec) -> dict[str, np.ndarray]:
    """Play the shard's episodes; every visited state gets the expert's label."""
    env = sim.make(spec.task, image_size=spec.image_size, render_scale=spec.render_scale, randomize=True,
                   cameras=spec.cameras, max_episode_steps=spec.max_steps)
    student = _student_driver(spec.student) if spec.student is not None else None
    images = {camera_input(c): f'image_{c}' for c in spec.cameras}   # shard key (the bundle's input name) -> obs key
    columns: dict[str, list[Any]] = {k: [] for k in (*images, 'state', 'label', 'focus', 'phrase', 'episode')}
    successes = [_play_episode(env, spec, seed, student, images, columns) for seed in spec.seeds]
    env.close()
    return {**{k: np.stack(columns[k]) for k in images}, 'state': np.stack(columns['state']).astype(np.float32),
            'label': np.stack(columns['label']).astype(np.float32),
            'focus': np.stack(columns['focus']).astype(np.float32),
            'phrase': np.array(columns['phrase'], np.int16), 'episode': np.array(columns['episode'], np.int32),
            'success': np.array(successes, bool), 'seeds': np.array(spec.seeds, np.int32)}


def _play_episode(env: Any, spec: ShardSpec, seed: int, student: Callable | None, images: dict[str, str],
                  columns: dict[str, list[Any]]) -> bool:
    """One episode of the shard, its visited states and the expert's labels appended to `columns`; whether it
    succeeded. The episode's draws (phrase, noise, fumble) come from its seed alone."""
    rng = np.random.default_rng([seed, 7])
    phrase = int(rng.integers(len(spec.embeddings)))
    expert, fumble, noise_std = _expert_for(spec, rng)
    obs, _ = env.reset(seed=seed)
    scene = env.unwrapped.scene
    expert.reset()
    succeeded_at = None
    for t in range(spec.max_steps):
        point = scene.task.focus_point()
        if not in_workspace(point):
            break
        label = expert.act(scene)
        for key, value in (*((k, obs[o]) for k, o in images.items()), ('state', obs['state']),
                           ('label', expert_label(label)), ('focus', point), ('phrase', phrase), ('episode', seed)):
            columns[key].append(value)
        action = (student(obs, spec.embeddings[phrase]) if student is not None
                  else _expert_driver(t, label, scene, fumble, noise_std, rng))
        obs, _, _, _, info = env.step(action)
        if info['success'] and succeeded_at is None:
            succeeded_at = t
        if succeeded_at is not None and t - succeeded_at >= spec.steps_after_success:
            break
    return succeeded_at is not None


def _expert_for(spec: ShardSpec, rng: np.random.Generator) -> tuple[Expert, Fumble | None, float]:
    """The episode's labelling expert, and when the expert drives: its fumble (pick tasks, fumble_fraction of
    the episodes) and its action noise (noisy_fraction of the episodes)."""
    noisy = spec.student is None and rng.random() < spec.noisy_fraction
    expert = make_expert(spec.task)
    fumbles = spec.student is None and spec.fumble_fraction > 0 and isinstance(expert, PickExpert)
    fumble = Fumble.draw(expert, rng) if fumbles and rng.random() < spec.fumble_fraction else None
    return expert, fumble, spec.noise_std if noisy else 0.0


def _expert_driver(t: int, label: np.ndarray, scene: Any, fumble: Fumble | None, noise_std: float,
                   rng: np.random.Generator) -> np.ndarray:
    """What the expert driver executes at step t: the fumble's action while it lasts, else the label
    (with N(0, noise_std) on the motion when the episode is noisy)."""
    mistaken = fumble.action(t, scene) if fumble is not None else None
    if mistaken is not None:
        return mistaken
    return noisy_action(label, noise_std, rng) if noise_std > 0 else label
