"""take lid off saucepan: grasp the lid's knob and lift the lid off the pan."""
from __future__ import annotations

import mujoco
import numpy as np

from sim.robot import PandaArm
from sim.tasks.base import (LIFT_GOAL_M, LIFT_SUCCESS_M, EpisodeInfo, Task, lift_reward, random_colour, rotate_z,
                            yaw_quat)

PAN_RADIUS, PAN_HEIGHT = 0.075, 0.07
LID_RADIUS, LID_THICKNESS = 0.08, 0.008
KNOB_RADIUS, KNOB_HEIGHT = 0.011, 0.04
GRASP_ABOVE_LID_M = 0.022       # TCP height above the lid's top face when grasping the knob
PLACEMENT_LOW, PLACEMENT_HIGH = (0.42, -0.15), (0.56, 0.15)


class TakeLidOffSaucepan(Task):
    name = 'take_lid_off_saucepan'
    phrases = ('take lid off saucepan', 'take the lid off the saucepan', 'remove the lid from the pan',
               'lift the lid off the pan', 'uncover the saucepan')

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        xy = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
        handle_yaw = float(rng.uniform(-np.pi, np.pi))
        metal = random_colour(rng, episode.randomize, (0.55, 0.56, 0.6))
        pan = spec.worldbody.add_body(name='saucepan', pos=[*xy, 0.0])
        pan.add_geom(name='saucepan', type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, PAN_HEIGHT / 2],
                     size=[PAN_RADIUS, PAN_HEIGHT / 2, 0], rgba=metal)
        handle_centre = rotate_z(np.array([PAN_RADIUS + 0.06, 0.0]), handle_yaw)
        pan.add_geom(name='saucepan_handle', type=mujoco.mjtGeom.mjGEOM_BOX, pos=[*handle_centre, PAN_HEIGHT - 0.012],
                     quat=yaw_quat(handle_yaw), size=[0.06, 0.011, 0.007],
                     rgba=random_colour(rng, episode.randomize, (0.1, 0.1, 0.1)))
        self.rest_position = np.array([*xy, PAN_HEIGHT + LID_THICKNESS / 2])
        lid = spec.worldbody.add_body(name='lid', pos=self.rest_position.tolist())
        lid.add_freejoint(name='lid')
        lid_colour = random_colour(rng, episode.randomize, (0.7, 0.72, 0.76))
        lid.add_geom(name='lid', type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[LID_RADIUS, LID_THICKNESS / 2, 0],
                     mass=0.08, rgba=lid_colour)
        lid.add_geom(name='lid_knob', type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                     pos=[0, 0, LID_THICKNESS / 2 + KNOB_HEIGHT / 2], size=[KNOB_RADIUS, KNOB_HEIGHT / 2, 0],
                     mass=0.02, condim=4, friction=[1.0, 0.01, 0.001],
                     rgba=random_colour(rng, episode.randomize, (0.12, 0.12, 0.12)))

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        super().bind(model, data)
        self._lid = model.body('lid').id

    def lid_position(self) -> np.ndarray:
        return self.body_position(self._lid)

    def grasp_point(self) -> np.ndarray:
        """Where the TCP should be to grasp the knob."""
        return self.lid_position() + [0.0, 0.0, LID_THICKNESS / 2 + GRASP_ABOVE_LID_M]

    def lifted(self) -> float:
        return float(self.lid_position()[2] - self.rest_position[2])

    def held(self, arm: PandaArm) -> bool:
        """Whether the gripper holds the object (both fingers on it)."""
        return arm.grasps({self._lid})

    def reward(self, arm: PandaArm) -> float:
        goal = self.rest_position + [0.0, 0.0, LIFT_GOAL_M]
        return lift_reward(self.held(arm), arm.ee_position(), self.grasp_point(), self.lid_position(), goal)

    def focus_point(self) -> np.ndarray:
        return self.grasp_point()

    def success(self, arm: PandaArm) -> bool:
        return self.lifted() >= LIFT_SUCCESS_M and self.held(arm)
