"""close microwave: push the open microwave door shut.

The microwave stands on the left of the table facing the middle (-y), so the front camera sees the
open cavity and the door; the door is hinged at the end nearer the robot and starts open 54-83
degrees. The robot pushes its outer face from its own side. The joint's lower limit (0 = shut) is
the door frame.
"""
from __future__ import annotations

import mujoco
import numpy as np

from sim.robot import PandaArm
from sim.tasks.base import EpisodeInfo, Task, approach, random_colour, rotate_z, yaw_quat

DEPTH, WIDTH, HEIGHT = 0.22, 0.32, 0.19          # cabinet, metres (x, y, z in its own frame)
DOOR_WIDTH, DOOR_HEIGHT, DOOR_THICKNESS = 0.25, 0.17, 0.012
PUSH_RADIUS_FRACTION = 0.7                       # where on the door the reward's approach term points
CLOSED_RAD = 0.15                                # success: door within ~9 degrees of shut
OPEN_RANGE_RAD = (0.95, 1.45)
PLACEMENT_LOW, PLACEMENT_HIGH = (0.46, 0.20), (0.56, 0.26)
FACING_YAW_RAD = np.pi / 2                       # cabinet's local frame turned so its front faces -y
YAW_RANGE_RAD = 0.2


class CloseMicrowave(Task):
    name = 'close_microwave'
    phrases = ('close microwave', 'close the microwave', 'shut the microwave', 'close the microwave door',
               'push the microwave door shut')

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        xy = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
        self.yaw = float(FACING_YAW_RAD + rng.uniform(-YAW_RANGE_RAD, YAW_RANGE_RAD))
        self.initial_angle = float(rng.uniform(*OPEN_RANGE_RAD))
        shell = random_colour(rng, episode.randomize, (0.85, 0.85, 0.87))
        dark = [0.08, 0.08, 0.1, 1.0]
        body = spec.worldbody.add_body(name='microwave', pos=[*xy, 0.0], quat=yaw_quat(self.yaw))
        body.add_geom(name='microwave_cabinet', type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, HEIGHT / 2],
                      size=[DEPTH / 2, WIDTH / 2, HEIGHT / 2], rgba=shell)
        body.add_geom(name='microwave_cavity', type=mujoco.mjtGeom.mjGEOM_BOX, contype=0, conaffinity=0,
                      pos=[-DEPTH / 2 - 0.0005, WIDTH / 2 - DOOR_WIDTH / 2 - 0.01, HEIGHT / 2],
                      size=[0.001, DOOR_WIDTH / 2 - 0.02, DOOR_HEIGHT / 2 - 0.02], rgba=dark)
        body.add_geom(name='microwave_panel', type=mujoco.mjtGeom.mjGEOM_BOX, contype=0, conaffinity=0,
                      pos=[-DEPTH / 2 - 0.0005, -WIDTH / 2 + 0.03, HEIGHT / 2 + 0.03],
                      size=[0.001, 0.02, 0.03], rgba=dark)
        hinge = [-DEPTH / 2 - DOOR_THICKNESS / 2 - 0.002, WIDTH / 2 - 0.005, HEIGHT / 2]
        door = body.add_body(name='microwave_door', pos=hinge)
        door.add_joint(name='microwave_door', type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, -1],
                       range=[0.0, 1.9], damping=0.3, frictionloss=0.02, armature=0.01, solref_limit=[0.01, 1.0])
        door.add_geom(name='microwave_door', type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, -DOOR_WIDTH / 2, 0],
                      size=[DOOR_THICKNESS / 2, DOOR_WIDTH / 2, DOOR_HEIGHT / 2], mass=0.3, rgba=shell)
        door.add_geom(name='microwave_window', type=mujoco.mjtGeom.mjGEOM_BOX, contype=0, conaffinity=0,
                      pos=[-DOOR_THICKNESS / 2 - 0.0005, -DOOR_WIDTH / 2 + 0.01, 0],
                      size=[0.001, DOOR_WIDTH / 2 - 0.05, DOOR_HEIGHT / 2 - 0.03], rgba=dark)
        door.add_geom(name='microwave_handle', type=mujoco.mjtGeom.mjGEOM_BOX,
                      pos=[-DOOR_THICKNESS / 2 - 0.01, -DOOR_WIDTH + 0.02, 0],
                      size=[0.008, 0.007, DOOR_HEIGHT / 2 - 0.03], mass=0.02,
                      rgba=random_colour(rng, episode.randomize, (0.3, 0.3, 0.32)))

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        super().bind(model, data)
        self._door_body = model.body('microwave_door').id
        self._qpos = int(model.jnt_qposadr[model.joint('microwave_door').id])

    def initialize(self) -> None:
        self.data.qpos[self._qpos] = self.initial_angle

    def door_angle(self) -> float:
        """0 = shut; positive = open toward the robot, radians."""
        return self.joint_value(self._qpos)

    def hinge(self) -> np.ndarray:
        return self.body_position(self._door_body)

    def free_edge_direction(self, angle: float) -> np.ndarray:
        """Unit vector in the table plane from the hinge toward the door's free edge, door at `angle`."""
        return rotate_z(np.array([0.0, -1.0]), self.yaw - angle)

    def outside_normal(self, angle: float) -> np.ndarray:
        """Unit vector in the table plane out of the door's outer face (the side to push on)."""
        return rotate_z(np.array([-1.0, 0.0]), self.yaw - angle)

    def push_point(self) -> np.ndarray:
        """A point on the door's outer face, 70% of the way to its free edge, at mid height."""
        angle = self.door_angle()
        xy = (self.hinge()[:2] + PUSH_RADIUS_FRACTION * DOOR_WIDTH * self.free_edge_direction(angle)
              + DOOR_THICKNESS / 2 * self.outside_normal(angle))
        return np.array([*xy, self.hinge()[2]])

    def reward(self, arm: PandaArm) -> float:
        progress = 1.0 - self.door_angle() / self.initial_angle
        return approach(self.push_point(), arm.ee_position()) + float(np.clip(progress, 0.0, 1.0))

    def focus_point(self) -> np.ndarray:
        return self.push_point()

    def success(self, arm: PandaArm) -> bool:
        return self.door_angle() <= CLOSED_RAD
