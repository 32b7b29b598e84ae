"""push button: press a spring-loaded button cap down near the bottom of its travel."""
from __future__ import annotations

import mujoco
import numpy as np

from sim.robot import PandaArm
from sim.tasks.base import EpisodeInfo, Task, approach, random_colour

BASE_RADIUS, BASE_HEIGHT = 0.045, 0.02
CAP_RADIUS, CAP_HEIGHT = 0.03, 0.02
TRAVEL_M = 0.012
PRESSED_FRACTION = 0.75
PLACEMENT_LOW, PLACEMENT_HIGH = (0.35, -0.20), (0.60, 0.20)


class PushButton(Task):
    name = 'push_button'
    phrases = ('push button', 'push the button', 'press the button', 'press down on the button',
               'push down the button')

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        xy = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
        base = spec.worldbody.add_body(name='button_base', pos=[*xy, 0.0])
        base.add_geom(name='button_base', type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, BASE_HEIGHT / 2],
                      size=[BASE_RADIUS, BASE_HEIGHT / 2, 0],
                      rgba=random_colour(rng, episode.randomize, (0.12, 0.12, 0.14)))
        # The cap's weight is compensated so it rests exactly at depth 0; the bottom takes 1.2 N.
        cap = base.add_body(name='button_cap', pos=[0, 0, BASE_HEIGHT], gravcomp=1.0)
        cap.add_joint(name='button', type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 0, 1], range=[-TRAVEL_M, 0.0],
                      stiffness=100.0, damping=0.5, solref_limit=[0.004, 1.0])
        cap.add_geom(name='button_cap', type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, CAP_HEIGHT / 2],
                     size=[CAP_RADIUS, CAP_HEIGHT / 2, 0], mass=0.05,
                     rgba=random_colour(rng, episode.randomize, (0.85, 0.08, 0.08)))
        cap.add_site(name='button_top', pos=[0, 0, CAP_HEIGHT])
        spec.add_exclude(bodyname1='button_base', bodyname2='button_cap')

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        super().bind(model, data)
        self._top = model.site('button_top').id
        self._qpos = int(model.jnt_qposadr[model.joint('button').id])

    def button_top(self) -> np.ndarray:
        """Centre of the cap's top face (moves down as it is pressed)."""
        return self.site_position(self._top)

    def depth(self) -> float:
        return -self.joint_value(self._qpos)

    def reward(self, arm: PandaArm) -> float:
        return approach(self.button_top(), arm.ee_position()) + min(self.depth() / (PRESSED_FRACTION * TRAVEL_M), 1.0)

    def focus_point(self) -> np.ndarray:
        return self.button_top()

    def success(self, arm: PandaArm) -> bool:
        return self.depth() >= PRESSED_FRACTION * TRAVEL_M
