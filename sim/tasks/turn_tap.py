"""turn tap: swing the tap's lever handle a quarter turn (counter-clockwise seen from above).

The tap is a column with a spout; its lever turns on a vertical hinge at the top, held by joint
friction. RLBench's turn_tap also asks for a 90 degree turn of one handle.
"""
from __future__ import annotations

import mujoco
import numpy as np

from sim.robot import PandaArm
from sim.tasks.base import EpisodeInfo, Task, approach, random_colour, rotate_z, yaw_quat

HINGE_HEIGHT = 0.13
LEVER_LENGTH = 0.09
TARGET_TURN_RAD = np.pi / 2
PLACEMENT_LOW, PLACEMENT_HIGH = (0.42, -0.15), (0.58, 0.15)


class TurnTap(Task):
    name = 'turn_tap'
    phrases = ('turn tap', 'turn the tap', 'rotate the tap handle', 'turn the faucet', 'twist the tap lever')

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        xy = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
        self.initial_angle = float(rng.uniform(-np.pi, np.pi))   # which way the lever points at reset
        metal = random_colour(rng, episode.randomize, (0.72, 0.74, 0.78))
        tap = spec.worldbody.add_body(name='tap', pos=[*xy, 0.0])
        tap.add_geom(name='tap_foot', type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, 0.01], size=[0.035, 0.01, 0],
                     rgba=metal)
        tap.add_geom(name='tap_column', type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, 0.065],
                     size=[0.015, 0.045, 0], rgba=metal)
        spout_yaw = self.initial_angle + np.pi + rng.uniform(-0.5, 0.5)   # away from the lever's path
        tip = rotate_z(np.array([0.06, 0.0]), spout_yaw)
        tap.add_geom(name='tap_spout', type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[0.01, 0, 0],
                     fromto=[0, 0, 0.085, tip[0], tip[1], 0.085], rgba=metal)
        lever = tap.add_body(name='tap_lever', pos=[0, 0, HINGE_HEIGHT], quat=yaw_quat(self.initial_angle))
        lever.add_joint(name='tap', type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], range=[-0.05, 2.8],
                        damping=0.05, frictionloss=0.03, armature=0.002)
        handle = random_colour(rng, episode.randomize, (0.15, 0.35, 0.85))
        lever.add_geom(name='tap_hub', type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.014, 0.012, 0], mass=0.02,
                       rgba=handle)
        lever.add_geom(name='tap_lever', type=mujoco.mjtGeom.mjGEOM_BOX, pos=[LEVER_LENGTH / 2, 0, 0],
                       size=[LEVER_LENGTH / 2, 0.007, 0.007], mass=0.02, rgba=handle)
        lever.add_geom(name='tap_knob', type=mujoco.mjtGeom.mjGEOM_SPHERE, pos=[LEVER_LENGTH, 0, 0], size=[0.012, 0, 0],
                       mass=0.01, rgba=handle)
        lever.add_site(name='tap_lever_tip', pos=[LEVER_LENGTH, 0, 0])
        spec.add_exclude(bodyname1='tap', bodyname2='tap_lever')

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        super().bind(model, data)
        self._tip = model.site('tap_lever_tip').id
        self._hinge_body = model.body('tap_lever').id
        self._qpos = int(model.jnt_qposadr[model.joint('tap').id])

    def hinge(self) -> np.ndarray:
        return self.body_position(self._hinge_body)

    def lever_tip(self) -> np.ndarray:
        return self.site_position(self._tip)

    def turned(self) -> float:
        """Rotation of the lever since reset, radians (positive = counter-clockwise from above)."""
        return self.joint_value(self._qpos)

    def lever_angle(self) -> float:
        """Direction the lever points, world yaw."""
        return self.initial_angle + self.turned()

    def reward(self, arm: PandaArm) -> float:
        return approach(self.lever_tip(), arm.ee_position()) + float(np.clip(self.turned() / TARGET_TURN_RAD, 0, 1))

    def focus_point(self) -> np.ndarray:
        return self.lever_tip()

    def success(self, arm: PandaArm) -> bool:
        return self.turned() >= TARGET_TURN_RAD
