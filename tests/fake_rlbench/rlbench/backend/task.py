"""FAKE rlbench.backend.task.Task: a task that places named FAKE objects and succeeds on a FAKE reach rule."""
from __future__ import annotations

import numpy as np

import fake_coppeliasim
from rlbench.backend.robot import Robot


class Task:
    FAKE_OBJECTS: tuple[tuple[str, str, tuple[float, float, float], float], ...] = ()  # name, kind, position, angle
    FAKE_GRASPABLE: tuple[str, ...] = ()
    FAKE_GOAL = ''                   # success: the tip within SUCCESS_RADIUS_M of this object (FAKE rule)
    FAKE_DESCRIPTIONS: tuple[str, ...] = ()
    FAKE_JITTER_M = 0.05             # objects are placed +- this in x and y from numpy's global random state

    def __init__(self, pyrep: object, robot: Robot) -> None:
        self.pyrep = pyrep
        self.robot = robot

    def get_name(self) -> str:
        return type(self).__name__

    def variation_count(self) -> int:
        return 1

    def init_episode(self, index: int) -> list[str]:
        scene = fake_coppeliasim.SCENE
        scene.objects = {}
        for name, kind, position, angle in self.FAKE_OBJECTS:
            jitter = np.random.uniform(-self.FAKE_JITTER_M, self.FAKE_JITTER_M, size=2)
            scene.add(name, kind, (position[0] + jitter[0], position[1] + jitter[1], position[2]), angle)
        return list(self.FAKE_DESCRIPTIONS)

    def get_graspable_objects(self) -> list[str]:
        return list(self.FAKE_GRASPABLE)

    def success(self) -> tuple[bool, bool]:
        scene = fake_coppeliasim.SCENE
        reached = np.linalg.norm(scene.objects[self.FAKE_GOAL].position - scene.tip_position)
        done = bool(reached < fake_coppeliasim.SUCCESS_RADIUS_M)
        return done, done

    def reward(self) -> float | None:
        return None
