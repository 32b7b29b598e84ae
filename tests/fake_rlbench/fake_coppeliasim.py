"""FAKE CoppeliaSim: the scene state that the FAKE pyrep and FAKE rlbench packages share.

No physics: the tip goes exactly where a planned move asks (if the target is inside WORKSPACE), a closing
gripper grasps graspable shapes within GRASP_RADIUS_M and carries them, and a task succeeds when the tip is
within SUCCESS_RADIUS_M of the task's goal object. One module-level SCENE, as CoppeliaSim is one per process.
Tests reach in to set joint angles, queue planning failures and read what the backend sent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TIP_START = (0.28, 0.0, 1.47)                    # roughly where RLBench's Panda tip starts, metres
TIP_START_QUATERNION_XYZW = (0.0, 1.0, 0.0, 0.0)  # pointing down
WORKSPACE_LOW = (-0.2, -0.6, 0.75)
WORKSPACE_HIGH = (0.8, 0.6, 1.8)
GRASP_RADIUS_M = 0.03
SUCCESS_RADIUS_M = 0.02


@dataclass
class FakeObject:
    name: str
    kind: str                      # 'shape', 'joint', 'proximity_sensor' or 'dummy'
    handle: int
    position: np.ndarray
    joint_position: float = 0.0


@dataclass
class FakeScene:
    objects: dict[str, FakeObject] = field(default_factory=dict)
    tip_position: np.ndarray = field(default_factory=lambda: np.array(TIP_START))
    tip_quaternion: np.ndarray = field(default_factory=lambda: np.array(TIP_START_QUATERNION_XYZW))
    gripper_open: bool = True
    grasped: list[str] = field(default_factory=list)
    planning_failures: list[BaseException] = field(default_factory=list)   # raised by the next planned moves
    running: bool = False

    def add(self, name: str, kind: str, position: tuple[float, float, float], joint_position: float = 0.0) -> None:
        self.objects[name] = FakeObject(name, kind, len(self.objects) + 1, np.array(position, dtype=np.float64),
                                        joint_position)

    def get(self, name: str, kind: str) -> FakeObject:
        if name not in self.objects:
            raise RuntimeError(f'FAKE CoppeliaSim: no object named {name!r} in the loaded scene')
        obj = self.objects[name]
        if obj.kind != kind:
            raise RuntimeError(f'FAKE CoppeliaSim: {name!r} is a {obj.kind}, not a {kind}')
        return obj

    def by_handle(self, handle: int) -> FakeObject:
        return next(obj for obj in self.objects.values() if obj.handle == handle)

    def restart(self) -> None:
        """A fresh FAKE simulator, as after launching CoppeliaSim: empty scene, robot at home."""
        self.objects = {}
        self.planning_failures = []
        self.reset_robot()
        self.running = True

    def reset_robot(self) -> None:
        self.tip_position = np.array(TIP_START)
        self.tip_quaternion = np.array(TIP_START_QUATERNION_XYZW)
        self.gripper_open = True
        self.grasped = []

    def move_tip(self, position: np.ndarray, quaternion_xyzw: np.ndarray) -> None:
        """Teleport the tip (FAKE planning always succeeds in one go) and carry grasped shapes along."""
        delta = np.asarray(position, dtype=np.float64) - self.tip_position
        for name in self.grasped:
            self.objects[name].position = self.objects[name].position + delta
        self.tip_position = np.asarray(position, dtype=np.float64).copy()
        self.tip_quaternion = np.asarray(quaternion_xyzw, dtype=np.float64).copy()


SCENE = FakeScene()
