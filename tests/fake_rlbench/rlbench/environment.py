"""FAKE rlbench.environment.Environment: the real constructor keywords, launch/get_task/shutdown.

FAKE_ENVIRONMENTS lists every Environment built, so tests can see what the backend configured.
"""
from __future__ import annotations

from typing import Any

import fake_coppeliasim
from rlbench.action_modes.action_mode import ActionMode
from rlbench.backend.robot import FakePandaArm, FakePandaGripper, Robot
from rlbench.backend.scene import Scene
from rlbench.backend.task import Task
from rlbench.observation_config import ObservationConfig
from rlbench.task_environment import TaskEnvironment

FAKE_ENVIRONMENTS: list[Environment] = []


class Environment:
    def __init__(self, action_mode: ActionMode, dataset_root: str = '', obs_config: ObservationConfig | None = None,
                 headless: bool = False, static_positions: bool = False, robot_setup: str = 'panda',
                 randomize_every: Any = None, frequency: int = 1, visual_randomization_config: Any = None,
                 dynamics_randomization_config: Any = None, attach_grasped_objects: bool = True,
                 shaped_rewards: bool = False, arm_max_velocity: float = 1.0,
                 arm_max_acceleration: float = 4.0) -> None:
        self.action_mode = action_mode
        self.obs_config = obs_config if obs_config is not None else ObservationConfig()
        self.headless = headless
        self.shaped_rewards = shaped_rewards
        self._robot: Robot | None = None
        self._scene: Scene | None = None
        self.fake_launched = False
        self.fake_shutdown_count = 0
        self.fake_task_environments: list[TaskEnvironment] = []
        FAKE_ENVIRONMENTS.append(self)

    def launch(self) -> None:
        if self.fake_launched:
            raise RuntimeError('Already called launch!')
        fake_coppeliasim.SCENE.restart()
        self._robot = Robot(FakePandaArm(), FakePandaGripper())
        self._scene = Scene(self._robot, self.obs_config)
        self.fake_launched = True

    def shutdown(self) -> None:
        fake_coppeliasim.SCENE.running = False
        self.fake_shutdown_count += 1

    def get_task(self, task_class: type[Task]) -> TaskEnvironment:
        if not self.fake_launched:
            self.launch()
        task = task_class(None, self._robot)
        self._scene.task = task
        task_env = TaskEnvironment(self._scene, task, self.action_mode, self.shaped_rewards)
        self.fake_task_environments.append(task_env)
        return task_env
