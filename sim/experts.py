"""Scripted experts: solve each task from privileged state (object poses, joint angles).

They prove each task is solvable through the same action interface a policy uses, and record
demonstrations. Each expert is a small state machine: `reset()` at the start of an episode, then
`act(scene)` per step returns an action in [-1, 1]^4 for LampEnv.step. `run_episode` plays one
episode; `success_rate` runs many (the table in docs/sim.md comes from `lamp-sim eval-expert`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np

from lamp_ros.contract import ACTION_SCALE_M
from sim.scene import LampScene
from sim.tasks import CloseMicrowave, PickUpCup, Pretrain, PushButton, TakeLidOffSaucepan, TurnTap
from sim.tasks.base import LIFT_GOAL_M
from sim.tasks.close_microwave import DOOR_WIDTH

OPEN, CLOSED = True, False
REACHED_M = 0.006              # a waypoint counts as reached within this distance


def toward(target: np.ndarray, tcp: np.ndarray, gripper_open: bool) -> np.ndarray:
    """The action moving the TCP straight at `target`, as far as one step allows (3 cm per axis)."""
    delta = np.clip((np.asarray(target) - tcp) / ACTION_SCALE_M, -1.0, 1.0)
    return np.array([*delta, 1.0 if gripper_open else 0.0], dtype=np.float32)


class Expert:
    def __init__(self) -> None:
        self.phase = 0

    def reset(self) -> None:
        self.phase = 0

    def act(self, scene: LampScene) -> np.ndarray:
        raise NotImplementedError


class PushButtonExpert(Expert):
    """Close the gripper, hover over the cap, push straight down and keep pushing."""

    def act(self, scene: LampScene) -> np.ndarray:
        task: PushButton = scene.task
        tcp, top = scene.ee_position(), task.button_top()
        hover = top + [0.0, 0.0, 0.05]
        if self.phase == 0 and np.linalg.norm(hover - tcp) < REACHED_M:
            self.phase = 1
        if self.phase == 0:
            return toward(hover, tcp, CLOSED)
        return toward(top - [0.0, 0.0, 0.04], tcp, CLOSED)


class TurnTapExpert(Expert):
    """Put the closed fingers beside the lever, behind it in the turning direction, and sweep it round."""
    RADIUS_M, CLEARANCE_M, LEAD_RAD, DONE_RAD = 0.065, 0.028, 0.35, 1.8

    def _beside_lever(self, task: TurnTap, angle: float, clearance: float) -> np.ndarray:
        along = np.array([np.cos(angle), np.sin(angle), 0.0])
        behind = np.array([np.sin(angle), -np.cos(angle), 0.0])      # opposite to the turning direction
        return task.hinge() + self.RADIUS_M * along + clearance * behind

    def act(self, scene: LampScene) -> np.ndarray:
        task: TurnTap = scene.task
        tcp = scene.ee_position()
        start = self._beside_lever(task, task.lever_angle(), self.CLEARANCE_M + 0.01)
        if self.phase == 0:                                          # above the start point
            target = start + [0.0, 0.0, 0.06]
            if np.linalg.norm(target - tcp) < REACHED_M:
                self.phase = 1
            return toward(target, tcp, CLOSED)
        if self.phase == 1:                                          # down beside the lever
            if np.linalg.norm(start - tcp) < REACHED_M:
                self.phase = 2
            return toward(start, tcp, CLOSED)
        if task.turned() < self.DONE_RAD:                            # push it round
            return toward(self._beside_lever(task, task.lever_angle() + self.LEAD_RAD, self.CLEARANCE_M), tcp, CLOSED)
        return toward(tcp, tcp, CLOSED)


class CloseMicrowaveExpert(Expert):
    """Come down in front of the door's outer face and push it shut along its arc."""
    RADIUS_FRACTION, CLEARANCE_M, LEAD_RAD, SAFE_HEIGHT_M = 0.7, 0.035, 0.3, 0.23

    def _on_door(self, task: CloseMicrowave, angle: float, clearance: float) -> np.ndarray:
        hinge = task.hinge()
        xy = hinge[:2] + self.RADIUS_FRACTION * DOOR_WIDTH * task.free_edge_direction(angle) \
            + clearance * task.outside_normal(angle)
        return np.array([*xy, hinge[2]])

    def act(self, scene: LampScene) -> np.ndarray:
        task: CloseMicrowave = scene.task
        tcp = scene.ee_position()
        start = self._on_door(task, task.door_angle(), self.CLEARANCE_M + 0.03)
        if self.phase == 0:                                          # above the start point, clear of the door
            target = np.array([*start[:2], self.SAFE_HEIGHT_M])
            if np.linalg.norm(target - tcp) < REACHED_M:
                self.phase = 1
            return toward(target, tcp, CLOSED)
        if self.phase == 1:
            if np.linalg.norm(start - tcp) < REACHED_M:
                self.phase = 2
            return toward(start, tcp, CLOSED)
        return toward(self._on_door(task, task.door_angle() - self.LEAD_RAD, self.CLEARANCE_M), tcp, CLOSED)


class PickExpert(Expert):
    """Open, hover over the grasp point, descend, close, wait for the grip, lift."""
    HOVER_M, CLOSE_STEPS = 0.08, 4

    def __init__(self, grasp_point: Callable[[LampScene], np.ndarray]) -> None:
        super().__init__()
        self.grasp_point = grasp_point

    def reset(self) -> None:
        super().reset()
        self.closing = 0
        self.lift_goal: np.ndarray | None = None

    def act(self, scene: LampScene) -> np.ndarray:
        tcp, grasp = scene.ee_position(), self.grasp_point(scene)
        if self.phase == 0:
            hover = grasp + [0.0, 0.0, self.HOVER_M]
            if np.linalg.norm(hover - tcp) < REACHED_M:
                self.phase = 1
            return toward(hover, tcp, OPEN)
        if self.phase == 1:
            if np.linalg.norm(grasp - tcp) < REACHED_M / 2:
                self.phase = 2
            return toward(grasp, tcp, OPEN)
        if self.phase == 2:
            self.closing += 1
            if self.closing >= self.CLOSE_STEPS:
                self.phase, self.lift_goal = 3, tcp + [0.0, 0.0, LIFT_GOAL_M]
            return toward(tcp, tcp, CLOSED)
        return toward(self.lift_goal, tcp, CLOSED)


def make_expert(task: str) -> Expert:
    experts: dict[str, Callable[[], Expert]] = {
        PushButton.name: PushButtonExpert,
        TurnTap.name: TurnTapExpert,
        CloseMicrowave.name: CloseMicrowaveExpert,
        PickUpCup.name: lambda: PickExpert(lambda scene: scene.task.grasp_point()),
        TakeLidOffSaucepan.name: lambda: PickExpert(lambda scene: scene.task.grasp_point()),
        Pretrain.name: lambda: PickExpert(lambda scene: scene.task.target_centre()),
    }
    if task not in experts:
        raise ValueError(f'no expert for task {task!r}; choose one of {sorted(experts)}')
    return experts[task]()


@dataclass(frozen=True)
class EpisodeResult:
    success: bool                     # succeeded at any step
    steps_to_success: int | None
    total_reward: float
    instruction: str


def run_episode(env: gymnasium.Env, expert: Expert, seed: int | None = None,
                on_step: Callable[[dict, float, dict], None] | None = None) -> EpisodeResult:
    """Play one full episode of `env` (a lamp/* env) with `expert`; `on_step(obs, reward, info)` sees each step."""
    observation, info = env.reset(seed=seed)
    expert.reset()
    scene = env.unwrapped.scene
    first_success, total, step = None, 0.0, 0
    if on_step is not None:
        on_step(observation, 0.0, info)
    done = False
    while not done:
        observation, reward, terminated, truncated, info = env.step(expert.act(scene))
        step += 1
        total += reward
        if info['success'] and first_success is None:
            first_success = step
        if on_step is not None:
            on_step(observation, reward, info)
        done = terminated or truncated
    return EpisodeResult(first_success is not None, first_success, total, info['instruction'])
