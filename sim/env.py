"""The gymnasium environment around a LampScene: LAMP's action and observation interface.

Action: Box(-1, 1, (4,)) = (dx, dy, dz, gripper). One step asks the TCP to move by action[:3] * 3 cm
(lamp_ros.contract.ACTION_SCALE_M) over one control period, orientation fixed and never above its
height at reset; the gripper is open iff action[3] >= 0.5. The velocity is then limited as the safety
layer limits it on the robot (`limited_velocity`: speed norm <= MAX_SPEED_MPS, change per step <=
MAX_ACCEL_MPS2 * control_dt), and the step is `scene.apply_velocity(velocity, open, control_dt)`, the
call the ROS sim_arm node makes with the safety node's velocity, so both paths move the arm the same way
(a policy trained without the limits moved a diagonal 1.7x faster in training than on the graph).
Values outside [-1, 1] are clipped; NaN/Inf or a wrong shape raise ValueError. A step's info holds the action as
applied (`applied_action`: the limited velocity in action units and the gripper action), what the safety layer
reports on control/applied_action on the robot.

Observation: {'image_front', 'image_wrist': (H, W, 3) uint8, 'state': float32 [ee_x, ee_y, ee_z,
gripper_opening]} (sim.STATE_KEYS); `cameras=('front',)` renders only the front camera (half the cost). Info: 'success' (this step), 'episode_success' (any step so
far), 'instruction', 'task'. Episodes run 150 steps (gymnasium's TimeLimit, from the registration);
`terminate_on_success=True` ends them at success instead.
"""
from __future__ import annotations

from typing import Any

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces

from lamp_ros.contract import ACTION_DIM, ACTION_SCALE_M, GRIPPER_OPEN_THRESHOLD, MAX_ACCEL_MPS2, MAX_SPEED_MPS
from sim import STATE_KEYS
from sim.config import SceneConfig
from sim.scene import CAMERAS, VIEW_PX, LampScene

BACKENDS = ('mujoco', 'rlbench')
STATE_MARGIN_M = 0.05


def state_bounds(config: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the 'state' observation: the TCP's target box (+ the weld's stretch), gripper 0..1."""
    arm = config.arm
    low = np.array([*np.subtract(arm.target_low, STATE_MARGIN_M), 0.0], dtype=np.float32)
    high = np.array([*np.add(arm.target_high, STATE_MARGIN_M), 1.0], dtype=np.float32)
    return low, high


def limited_velocity(velocity: np.ndarray, previous: np.ndarray, dt: float) -> np.ndarray:
    """`velocity` (m/s) within the safety layer's default speed and acceleration limits (norms), from `previous`."""
    speed = float(np.linalg.norm(velocity))
    if speed > MAX_SPEED_MPS:
        velocity = velocity * (MAX_SPEED_MPS / speed)
    change = velocity - previous
    largest = MAX_ACCEL_MPS2 * dt
    if float(np.linalg.norm(change)) > largest:
        velocity = previous + change * (largest / float(np.linalg.norm(change)))
    return velocity


class LampEnv(gymnasium.Env):
    metadata = {'render_modes': ['rgb_array'], 'render_fps': 10}

    def __init__(self, task: str = 'push_button', render_mode: str | None = None,
                 terminate_on_success: bool = False, cameras: tuple[str, ...] = CAMERAS,
                 **scene_options: Any) -> None:
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not cameras or any(c not in CAMERAS for c in cameras):
            raise ValueError(f'cameras must be a non-empty subset of {CAMERAS}, got {cameras!r}')
        self.cameras = tuple(cameras)
        self.config = SceneConfig.from_kwargs(**scene_options)
        self.scene = LampScene(task, self.config)
        self.task_name = task
        self.render_mode = render_mode
        self.terminate_on_success = terminate_on_success
        self.metadata = {**self.metadata, 'render_fps': 1.0 / self.config.control_dt}
        image = spaces.Box(0, 255, (self.config.image_height, self.config.image_width, 3), np.uint8)
        low, high = state_bounds(self.config)
        self.observation_space = spaces.Dict({
            **{f'image_{camera}': image for camera in self.cameras},
            'state': spaces.Box(low, high, (len(STATE_KEYS),), np.float32),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._episode_success = False
        self._velocity = np.zeros(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.scene.reset(seed)
        self._velocity = np.zeros(3)
        success = self.scene.success()
        self._episode_success = success
        return self._observation(), self._info(success)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f'action must have shape ({ACTION_DIM},) = (dx, dy, dz, gripper), got shape {action.shape}')
        if not np.all(np.isfinite(action)):
            raise ValueError(f'action must be finite, got {action.tolist()}')
        action = np.clip(action, -1.0, 1.0)
        dt = self.config.control_dt
        self._velocity = limited_velocity(action[:3] * ACTION_SCALE_M / dt, self._velocity, dt)
        self.scene.apply_velocity(self._velocity, bool(action[3] >= GRIPPER_OPEN_THRESHOLD), dt)
        reward = self.scene.reward()
        success = self.scene.success()
        self._episode_success = self._episode_success or success
        terminated = self.terminate_on_success and success
        applied = np.append(self._velocity * dt / ACTION_SCALE_M, action[3]).astype(np.float32)
        return self._observation(), reward, terminated, False, {**self._info(success), 'applied_action': applied}

    def render(self) -> np.ndarray | None:
        return self.scene.render('front') if self.render_mode == 'rgb_array' else None

    def close(self) -> None:
        self.scene.close()

    def view_frame(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """What people watch (videos): each camera rendered at VIEW_PX, then the agent's own front image enlarged
        (nearest pixel), so a video shows both the scene and what the policy had to go on."""
        panels = [self.scene.render_view(camera) for camera in self.cameras]
        agent = obs['image_front']
        panels.append(cv2.resize(agent, (VIEW_PX * agent.shape[1] // agent.shape[0], VIEW_PX),
                                 interpolation=cv2.INTER_NEAREST))
        return np.hstack(panels)

    @property
    def instruction(self) -> str:
        return self.scene.instruction

    def _observation(self) -> dict[str, np.ndarray]:
        return {**{f'image_{camera}': self.scene.render(camera) for camera in self.cameras},
                'state': self.scene.state()}

    def _info(self, success: bool) -> dict[str, Any]:
        return {'success': bool(success), 'episode_success': self._episode_success,
                'instruction': self.scene.instruction, 'task': self.task_name}


def make_env(task: str, backend: str = 'mujoco', **kwargs: Any) -> gymnasium.Env:
    """gymnasium entry point of every lamp/* id: the MuJoCo scene, or RLBench where installed."""
    if backend == 'mujoco':
        return LampEnv(task=task, **kwargs)
    if backend == 'rlbench':
        from sim.backends.rlbench import make_rlbench_env   # imports nothing heavy until asked for
        image_size = kwargs.pop('image_size', 128)
        return make_rlbench_env(task, image_size=image_size, **kwargs)
    raise ValueError(f'unknown backend {backend!r}; choose one of {BACKENDS}')
