"""Scripted experts: solve each task from privileged state (object poses, joint angles).

They prove each task is solvable through the same action interface a policy uses, record
demonstrations, and label states for DAgger. For that last use every expert is a Markov controller:
`act(scene)` is a pure function of the scene's current state (object poses, joint angles, TCP
position, gripper opening, contacts) with geometric tolerances, and carries nothing from one step to
the next, so it gives a sensible action from any state a student policy reaches (arm displaced,
gripper in the wrong state, halfway through the motion). `reset()` is kept for callers and does
nothing. `run_episode` plays one episode, optionally with noisy execution and clean labels
(`noisy_action`); the table in docs/sim.md comes from `lamp-sim eval-expert`.
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
from sim.tasks.close_microwave import DOOR_HEIGHT, DOOR_WIDTH, HEIGHT
from sim.tasks.turn_tap import LEVER_LENGTH

OPEN, CLOSED = True, False
UP = np.array([0.0, 0.0, 1.0])
CLOSED_OPENING = 0.3           # gripper opening below which the fingers are closed enough to push with
OPEN_OPENING = 0.9             # gripper opening above which the fingers are open enough to descend around an object
EMPTY_OPENING = 0.05           # gripper opening below which the fingers have closed on nothing
UPRIGHT_COS = np.cos(np.radians(45))   # a cup whose axis is tilted less than this from vertical stands
LYING_GRASP_ABOVE_M = 0.01
RISE_MARGIN_M = 0.03           # how far below the approach funnel the TCP may be before it rises straight up


def toward(target: np.ndarray, tcp: np.ndarray, gripper_open: bool) -> np.ndarray:
    """The action moving the TCP straight at `target`, as far as one step allows (3 cm per axis)."""
    delta = np.clip((np.asarray(target) - tcp) / ACTION_SCALE_M, -1.0, 1.0)
    return np.array([*delta, 1.0 if gripper_open else 0.0], dtype=np.float32)


def hold(gripper_open: bool) -> np.ndarray:
    """Stay put (the task is done, or the gripper must open before anything moves)."""
    return np.array([0.0, 0.0, 0.0, 1.0 if gripper_open else 0.0], dtype=np.float32)


@dataclass(frozen=True)
class Funnel:
    """An approach from above: the TCP may be `height(xy error)` above the goal, so it only comes down when over it.

    No height within `dead_m` of the goal in the table plane, rising `slope` metres per metre beyond,
    at most `top_m`. A TCP more than RISE_MARGIN_M below the funnel (low beside the object) first rises
    straight up, so it never sweeps sideways through what it approaches.
    """
    dead_m: float
    slope: float
    top_m: float

    def height(self, xy_error: float) -> float:
        return min(self.slope * max(xy_error - self.dead_m, 0.0), self.top_m)

    def act(self, goal: np.ndarray, tcp: np.ndarray, gripper_open: bool, floor_m: float = 0.0) -> np.ndarray:
        """Step toward the funnel point over `goal`, staying at least `floor_m` above it."""
        height = max(self.height(float(np.linalg.norm((goal - tcp)[:2]))), min(floor_m, self.top_m))
        if tcp[2] < goal[2] + height - RISE_MARGIN_M:
            return toward([tcp[0], tcp[1], goal[2] + height], tcp, gripper_open)
        return toward(goal + height * UP, tcp, gripper_open)


class Expert:
    """A Markov controller: `act` reads only the current scene state."""

    def reset(self) -> None:
        """Nothing to reset: no expert carries state between steps (kept for callers)."""

    def act(self, scene: LampScene) -> np.ndarray:
        raise NotImplementedError


class PushButtonExpert(Expert):
    """Closed fingers: press straight down when over the cap's axis, else come over it from above.

    With open fingers the pads straddle the cap and press nothing, so the gripper is always commanded
    closed and the press waits until it is.
    """
    AXIS_TOL_M, PRESS_M, HOVER_M = 0.015, 0.04, 0.05
    HOVER = Funnel(dead_m=0.0, slope=0.0, top_m=HOVER_M)

    def act(self, scene: LampScene) -> np.ndarray:
        task: PushButton = scene.task
        tcp, top = scene.ee_position(), task.button_top()
        if np.linalg.norm((top - tcp)[:2]) < self.AXIS_TOL_M and scene.gripper_opening() < CLOSED_OPENING:
            return toward(top - self.PRESS_M * UP, tcp, CLOSED)
        return self.HOVER.act(top, tcp, CLOSED, floor_m=self.HOVER_M)


class TurnTapExpert(Expert):
    """Closed fingers beside the lever, behind it in the turning direction, sweep it round.

    At lever height and behind the lever (within the sweep zone) it pushes toward a point a little
    ahead of the lever; anywhere else it comes down onto the start point behind the lever through a
    funnel, so it never lands on the lever or sweeps into it from the front.
    """
    RADIUS_M, CLEARANCE_M, START_CLEARANCE_M, LEAD_RAD, DONE_RAD = 0.065, 0.028, 0.038, 0.35, 1.8
    ZONE_ALONG_M = (0.025, LEVER_LENGTH + 0.025)      # sweep zone, along the lever from the hinge
    ZONE_BEHIND_M = (-0.005, 0.08)                    # and behind it
    ZONE_HEIGHT_M = 0.015                             # and within this of the lever's height
    FUNNEL = Funnel(dead_m=0.01, slope=4.0, top_m=0.06)

    def _beside_lever(self, task: TurnTap, angle: float, clearance: float) -> np.ndarray:
        along = np.array([np.cos(angle), np.sin(angle), 0.0])
        behind = np.array([np.sin(angle), -np.cos(angle), 0.0])      # opposite to the turning direction
        return task.hinge() + self.RADIUS_M * along + clearance * behind

    def in_sweep_zone(self, task: TurnTap, tcp: np.ndarray) -> bool:
        """Whether the TCP is at lever height, behind the lever, along its length: where pushing turns it."""
        angle, offset = task.lever_angle(), tcp - task.hinge()
        along = offset[0] * np.cos(angle) + offset[1] * np.sin(angle)
        behind = offset[0] * np.sin(angle) - offset[1] * np.cos(angle)
        return (self.ZONE_ALONG_M[0] < along < self.ZONE_ALONG_M[1] and self.ZONE_BEHIND_M[0] < behind
                < self.ZONE_BEHIND_M[1] and abs(offset[2]) < self.ZONE_HEIGHT_M)

    def act(self, scene: LampScene) -> np.ndarray:
        task: TurnTap = scene.task
        tcp = scene.ee_position()
        if task.turned() >= self.DONE_RAD:
            return hold(CLOSED)
        if self.in_sweep_zone(task, tcp):
            return toward(self._beside_lever(task, task.lever_angle() + self.LEAD_RAD, self.CLEARANCE_M), tcp, CLOSED)
        start = self._beside_lever(task, task.lever_angle(), self.START_CLEARANCE_M)
        closed = scene.gripper_opening() < CLOSED_OPENING
        return self.FUNNEL.act(start, tcp, CLOSED, floor_m=0.0 if closed else self.FUNNEL.top_m)


class CloseMicrowaveExpert(Expert):
    """Closed fingers in front of the door's outer face, push it shut along its arc.

    Within the push zone (outside the door, along its outer half, below its top) it pushes toward a
    point on the door a little further shut; anywhere else it comes down in front of the door through
    a funnel from above the cabinet, so it never drops onto the door or comes at it from inside.
    """
    RADIUS_FRACTION, CLEARANCE_M, START_CLEARANCE_M, LEAD_RAD, SAFE_HEIGHT_M = 0.7, 0.035, 0.065, 0.3, 0.23
    DONE_RAD = 0.05
    FUNNEL = Funnel(dead_m=0.015, slope=5.0, top_m=SAFE_HEIGHT_M - HEIGHT / 2)    # the hinge is at mid height
    ZONE_ALONG_M = (0.35 * DOOR_WIDTH, DOOR_WIDTH)     # push zone, along the door from the hinge
    ZONE_OUTSIDE_M = (-0.005, 0.10)                    # and out from its outer face
    ZONE_HEIGHT_M = DOOR_HEIGHT / 2 - 0.025            # and within this of the door's mid height

    def _on_door(self, task: CloseMicrowave, angle: float, clearance: float) -> np.ndarray:
        hinge = task.hinge()
        xy = hinge[:2] + self.RADIUS_FRACTION * DOOR_WIDTH * task.free_edge_direction(angle) \
            + clearance * task.outside_normal(angle)
        return np.array([*xy, hinge[2]])

    def in_push_zone(self, task: CloseMicrowave, tcp: np.ndarray) -> bool:
        """Whether the TCP is in front of the door's outer half, below its top: where pushing shuts it."""
        angle, offset = task.door_angle(), tcp - task.hinge()
        along = float(offset[:2] @ task.free_edge_direction(angle))
        outside = float(offset[:2] @ task.outside_normal(angle))
        return (self.ZONE_ALONG_M[0] < along < self.ZONE_ALONG_M[1] and self.ZONE_OUTSIDE_M[0] < outside
                < self.ZONE_OUTSIDE_M[1] and abs(offset[2]) < self.ZONE_HEIGHT_M)

    def act(self, scene: LampScene) -> np.ndarray:
        task: CloseMicrowave = scene.task
        tcp = scene.ee_position()
        if task.door_angle() <= self.DONE_RAD:
            return hold(CLOSED)
        if self.in_push_zone(task, tcp):
            return toward(self._on_door(task, task.door_angle() - self.LEAD_RAD, self.CLEARANCE_M), tcp, CLOSED)
        start = self._on_door(task, task.door_angle(), self.START_CLEARANCE_M)
        closed = scene.gripper_opening() < CLOSED_OPENING
        return self.FUNNEL.act(start, tcp, CLOSED, floor_m=0.0 if closed else self.FUNNEL.top_m)


class PickExpert(Expert):
    """Grasp the object from above and lift it, deciding from the grasp, the gripper opening and the TCP.

    In order: grasped (both fingers touch it): lift it to its goal height. Fingers partly closed near
    the grasp point: keep closing. Open at the grasp point: close. Fingers not open near the object (a
    missed or off-centre grasp): open in place, since rising would drag or tip it. Otherwise come down
    onto the grasp point through a funnel with the fingers open, staying at hover height until they
    are. The gripper opening is the only "memory": a grasp begun at the grasp point keeps closing within
    a looser tolerance than the one that starts it, so noise does not abort it.
    """
    HOVER_M = 0.08
    FUNNEL = Funnel(dead_m=0.012, slope=3.0, top_m=HOVER_M)
    START_M = np.array([0.015, 0.008, 0.015])   # open fingers this near the grasp point (x, y, z) start closing;
    #                                            y is across the pads, where an offset squeezes the object out
    KEEP_XY_M, KEEP_Z_M = 0.025, 0.02          # closing fingers this near it keep closing
    NEAR_XY_M, NEAR_Z_M = 0.05, 0.03           # fingers not open this near it open in place (rising would drag it)

    def __init__(self, body: str, grasp_point: Callable[[LampScene], np.ndarray],
                 rest_position: Callable[[LampScene], np.ndarray]) -> None:
        self.body, self.grasp_point, self.rest_position = body, grasp_point, rest_position

    def grasped(self, scene: LampScene) -> bool:
        return scene.arm.grasps({scene.model.body(self.body).id})

    def lift(self, scene: LampScene, tcp: np.ndarray) -> np.ndarray:
        """Raise the held object toward its lift goal (LIFT_GOAL_M above its rest position), where the reward peaks."""
        rise = self.rest_position(scene)[2] + LIFT_GOAL_M - scene.data.xpos[scene.model.body(self.body).id][2]
        return toward(tcp + rise * UP, tcp, CLOSED)

    def act(self, scene: LampScene) -> np.ndarray:
        tcp, grasp, opening = scene.ee_position(), self.grasp_point(scene), scene.gripper_opening()
        xy_error, z_error = np.linalg.norm((grasp - tcp)[:2]), abs(grasp[2] - tcp[2])
        if self.grasped(scene):
            return self.lift(scene, tcp)
        if EMPTY_OPENING < opening < OPEN_OPENING and xy_error < self.KEEP_XY_M and z_error < self.KEEP_Z_M:
            return toward(grasp, tcp, CLOSED)
        if opening >= OPEN_OPENING and np.all(np.abs(grasp - tcp) < self.START_M):
            return toward(grasp, tcp, CLOSED)
        if opening < OPEN_OPENING and xy_error < self.NEAR_XY_M and z_error < self.NEAR_Z_M:
            return hold(OPEN)
        return self.FUNNEL.act(grasp, tcp, OPEN, floor_m=0.0 if opening >= OPEN_OPENING else self.HOVER_M)


def cup_grasp_point(scene: LampScene) -> np.ndarray:
    """The cup's grasp point; for a cup knocked over, just above its middle (fingers across its body)."""
    task: PickUpCup = scene.task
    axis = scene.data.xmat[scene.model.body('cup').id].reshape(3, 3)[:, 2]
    if abs(axis[2]) > UPRIGHT_COS:
        return task.grasp_point()
    return task.cup_position() + LYING_GRASP_ABOVE_M * UP


def make_expert(task: str) -> Expert:
    experts: dict[str, Callable[[], Expert]] = {
        PushButton.name: PushButtonExpert,
        TurnTap.name: TurnTapExpert,
        CloseMicrowave.name: CloseMicrowaveExpert,
        PickUpCup.name: lambda: PickExpert('cup', cup_grasp_point, lambda scene: scene.task.rest_position),
        TakeLidOffSaucepan.name: lambda: PickExpert('lid', lambda scene: scene.task.grasp_point(),
                                                    lambda scene: scene.task.rest_position),
        Pretrain.name: lambda: PickExpert('object_0', lambda scene: scene.task.target_centre(),
                                          lambda scene: scene.task.rest_positions[0]),
    }
    if task not in experts:
        raise ValueError(f'no expert for task {task!r}; choose one of {sorted(experts)}')
    return experts[task]()


def noisy_action(action: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """`action` with N(0, noise_std) added to its motion dims, clipped to [-1, 1]; the gripper dim is kept.

    Executing this while recording the clean action as the label gives demonstrations that visit
    (and recover from) states off the expert's own path.
    """
    executed = np.array(action, dtype=np.float32)
    executed[:3] = np.clip(executed[:3] + rng.normal(0.0, noise_std, 3), -1.0, 1.0)
    return executed


@dataclass(frozen=True)
class EpisodeResult:
    success: bool                     # succeeded at any step
    steps_to_success: int | None
    total_reward: float
    instruction: str
    noisy: bool = False               # whether the executed actions had noise added


def run_episode(env: gymnasium.Env, expert: Expert, seed: int | None = None,
                on_step: Callable[[dict, float, dict], None] | None = None, action_noise: float = 0.0,
                noisy_fraction: float = 1.0, rng: np.random.Generator | None = None) -> EpisodeResult:
    """Play one full episode of `env` (a lamp/* env) with `expert`; `on_step(obs, reward, info)` sees each step.

    With `action_noise` > 0 the episode is noisy with probability `noisy_fraction` (drawn from `rng`):
    each executed action is `noisy_action(label, action_noise, rng)`. The info passed to `on_step`
    after a step also holds 'expert_action' (the clean label, what a demonstration should record) and
    'executed_action'.
    """
    if action_noise < 0 or not 0.0 <= noisy_fraction <= 1.0:
        raise ValueError(f'need action_noise >= 0 and noisy_fraction in [0, 1], got {action_noise}, {noisy_fraction}')
    rng = np.random.default_rng(seed) if rng is None else rng
    noisy = action_noise > 0 and rng.random() < noisy_fraction
    observation, info = env.reset(seed=seed)
    expert.reset()
    scene = env.unwrapped.scene
    first_success, total, step = None, 0.0, 0
    if on_step is not None:
        on_step(observation, 0.0, info)
    done = False
    while not done:
        label = expert.act(scene)
        executed = noisy_action(label, action_noise, rng) if noisy else label
        observation, reward, terminated, truncated, info = env.step(executed)
        step += 1
        total += reward
        if info['success'] and first_success is None:
            first_success = step
        if on_step is not None:
            on_step(observation, reward, {**info, 'expert_action': label, 'executed_action': executed})
        done = terminated or truncated
    return EpisodeResult(first_success is not None, first_success, total, info['instruction'], noisy)
