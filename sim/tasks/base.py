"""What a task is: objects added to the scene, a shaped reward, a success test, an instruction.

A task is built afresh every episode (the scene recompiles its model per episode, so object scale,
pose and colour go straight into the model): `build` adds its bodies to the MjSpec, drawing the
episode's variation from `rng`; after compiling, `bind` looks up what it needs; `initialize` sets
initial joint states (an open door). Rewards follow LAMP's RLBench fork: for articulated tasks,
exp(-distance) from the TCP to the handle plus the articulation's progress (button depth, lever turn,
door closing, each in [0, 1]); for lifting, exp(-distance) to the grasp point until grasped, then
1 + exp(-distance from the object to its lift goal). Either way the reward grows toward success.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import mujoco
import numpy as np

from sim.robot import PandaArm

LIFT_SUCCESS_M = 0.05     # a lift task succeeds with the object grasped this far above its rest height
LIFT_GOAL_M = 0.15        # the lift reward pulls the object toward this height above its rest position


@dataclass(frozen=True)
class EpisodeInfo:
    """What a task may read about the episode when it builds its objects and instruction."""
    base_seed: int            # seed of the last seeded reset
    index: int                # episodes since that reset (0 for the seeded one)
    randomize: bool           # visual randomization on (colours); placement is always drawn


def random_colour(rng: np.random.Generator, randomize: bool, default: tuple[float, float, float]) -> list[float]:
    """A saturated random RGBA colour, or `default` without randomization."""
    if not randomize:
        return [*default, 1.0]
    hue = rng.uniform(0, 6)
    channel = np.clip(np.abs((hue + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    value, saturation = rng.uniform(0.45, 0.95), rng.uniform(0.5, 1.0)
    return [*(value * (1 - saturation + saturation * channel)).tolist(), 1.0]


def yaw_quat(angle: float) -> list[float]:
    return [float(np.cos(angle / 2)), 0.0, 0.0, float(np.sin(angle / 2))]


def rotate_z(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * vector[0] - s * vector[1], s * vector[0] + c * vector[1], *vector[2:]])


def approach(point: np.ndarray, tcp: np.ndarray) -> float:
    """LAMP's approach term: exp(-distance in metres) between the TCP and a point of interest."""
    return float(np.exp(-np.linalg.norm(np.asarray(point) - tcp)))


def lift_reward(grasped: bool, tcp: np.ndarray, grasp_point: np.ndarray, object_position: np.ndarray,
                goal: np.ndarray) -> float:
    """LAMP's pick-up shaping: approach the grasp point; once grasped, 1 + exp(-distance to the lift goal)."""
    if not grasped:
        return approach(grasp_point, tcp)
    return 1.0 + approach(goal, object_position)


class Task(abc.ABC):
    name: ClassVar[str]                    # snake_case id: push_button, ...
    phrases: ClassVar[tuple[str, ...]]     # natural-language task phrases; the first is LAMP's

    def __init__(self) -> None:
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None

    @abc.abstractmethod
    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        """Add this episode's objects to the scene."""

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self.model, self.data = model, data

    def initialize(self) -> None:
        """Set initial joint states after the model is bound (before the first mj_forward)."""

    @abc.abstractmethod
    def reward(self, arm: PandaArm) -> float:
        """Dense shaped reward of the current state."""

    @abc.abstractmethod
    def success(self, arm: PandaArm) -> bool:
        """Whether the task is accomplished in the current state."""

    def focus_point(self) -> np.ndarray:
        """The point the task's approach reward pulls the TCP to (the button's top, a grasp point, ...): the
        imitation stage's auxiliary target and part of the privileged state (sim.privileged)."""
        raise NotImplementedError(f'task {self.name!r} has no single focus point')

    def instruction(self, rng: np.random.Generator, episode: EpisodeInfo, paraphrase: bool) -> str:
        """The task phrase (a random paraphrase if asked)."""
        return self.phrases[int(rng.integers(len(self.phrases)))] if paraphrase else self.phrases[0]

    # helpers for subclasses
    def body_position(self, body_id: int) -> np.ndarray:
        return self.data.xpos[body_id].copy()

    def site_position(self, site_id: int) -> np.ndarray:
        return self.data.site_xpos[site_id].copy()

    def joint_value(self, qpos_address: int) -> float:
        return float(self.data.qpos[qpos_address])
