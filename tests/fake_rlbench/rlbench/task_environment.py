"""FAKE rlbench.task_environment.TaskEnvironment: reset/step with the real return values; records actions."""
from __future__ import annotations

import numpy as np

import fake_coppeliasim
from rlbench.action_modes.action_mode import ActionMode
from rlbench.backend.observation import Observation
from rlbench.backend.scene import Scene
from rlbench.backend.task import Task


class TaskEnvironment:
    def __init__(self, scene: Scene, task: Task, action_mode: ActionMode, shaped_rewards: bool = False) -> None:
        self._scene = scene
        self._task = task
        self._action_mode = action_mode
        self._shaped_rewards = shaped_rewards
        self._variation_number = 0
        self._reset_called = False
        self.fake_received_actions: list[np.ndarray] = []   # FAKE: every action step() was given, as sent
        self.fake_reset_count = 0

    def get_name(self) -> str:
        return self._task.get_name()

    def reset(self) -> tuple[list[str], Observation]:
        fake_coppeliasim.SCENE.reset_robot()
        descriptions = self._task.init_episode(self._variation_number)
        self._reset_called = True
        self.fake_reset_count += 1
        return descriptions, self._scene.get_observation()

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool]:
        if not self._reset_called:
            raise RuntimeError("Call 'reset' before calling 'step' on a task.")
        self.fake_received_actions.append(np.array(action, dtype=np.float64, copy=True))
        self._action_mode.action(self._scene, action)
        success, terminate = self._task.success()
        reward = float(success)
        if self._shaped_rewards:
            reward = self._task.reward()
            if reward is None:
                raise RuntimeError('User requested shaped rewards, but task %s does not have a defined reward() '
                                   'function.' % self._task.get_name())
        return self._scene.get_observation(), reward, terminate
