"""pick up cup: grasp the cup and lift it off the table."""
from __future__ import annotations

import mujoco
import numpy as np

from sim.robot import PandaArm
from sim.tasks.base import LIFT_GOAL_M, LIFT_SUCCESS_M, EpisodeInfo, Task, lift_reward, random_colour, yaw_quat

PLACEMENT_LOW, PLACEMENT_HIGH = (0.36, -0.20), (0.60, 0.20)
GRASP_BELOW_RIM_M = 0.025


class PickUpCup(Task):
    name = 'pick_up_cup'
    phrases = ('pick up cup', 'pick up the cup', 'lift the cup', 'grasp the cup and lift it',
               'raise the cup off the table')

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        xy = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
        self.radius = float(rng.uniform(0.027, 0.033))
        self.height = float(rng.uniform(0.08, 0.10))
        # The handle points roughly along y, away from the fingers, which close along x.
        handle_yaw = float(rng.uniform(-1.0, 1.0) + (np.pi if rng.random() < 0.5 else 0.0) + np.pi / 2)
        colour = random_colour(rng, episode.randomize, (0.2, 0.45, 0.9))
        self.rest_position = np.array([*xy, self.height / 2])
        cup = spec.worldbody.add_body(name='cup', pos=self.rest_position.tolist(), quat=yaw_quat(handle_yaw))
        cup.add_freejoint(name='cup')
        cup.add_geom(name='cup', type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[self.radius, self.height / 2, 0],
                     mass=0.1, rgba=colour, condim=4, friction=[1.0, 0.01, 0.001])
        cup.add_geom(name='cup_inside', type=mujoco.mjtGeom.mjGEOM_CYLINDER, contype=0, conaffinity=0,
                     pos=[0, 0, self.height / 2 - 0.004], size=[self.radius - 0.004, 0.0045, 0],
                     rgba=[0.1, 0.1, 0.1, 1.0])
        cup.add_geom(name='cup_handle', type=mujoco.mjtGeom.mjGEOM_CAPSULE, contype=0, conaffinity=0,
                     fromto=[self.radius, 0, 0.025, self.radius + 0.022, 0, 0.0], size=[0.006, 0, 0], rgba=colour)
        cup.add_geom(name='cup_handle_low', type=mujoco.mjtGeom.mjGEOM_CAPSULE, contype=0, conaffinity=0,
                     fromto=[self.radius + 0.022, 0, 0.0, self.radius, 0, -0.025], size=[0.006, 0, 0], rgba=colour)

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        super().bind(model, data)
        self._body = model.body('cup').id

    def cup_position(self) -> np.ndarray:
        return self.body_position(self._body)

    def grasp_point(self) -> np.ndarray:
        """Where the TCP should be to grasp: on the axis, a little below the rim."""
        return self.cup_position() + [0.0, 0.0, self.height / 2 - GRASP_BELOW_RIM_M]

    def lifted(self) -> float:
        return float(self.cup_position()[2] - self.rest_position[2])

    def held(self, arm: PandaArm) -> bool:
        """Whether the gripper holds the object (both fingers on it)."""
        return arm.grasps({self._body})

    def reward(self, arm: PandaArm) -> float:
        goal = self.rest_position + [0.0, 0.0, LIFT_GOAL_M]
        return lift_reward(self.held(arm), arm.ee_position(), self.grasp_point(), self.cup_position(), goal)

    def focus_point(self) -> np.ndarray:
        return self.grasp_point()

    def success(self, arm: PandaArm) -> bool:
        return self.lifted() >= LIFT_SUCCESS_M and self.held(arm)
