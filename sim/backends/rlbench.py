"""The five downstream tasks on RLBench (CoppeliaSim), behind the same gymnasium interface as the MuJoCo envs.

LAMP's published code runs on RLBench; this backend lets a user with CoppeliaSim compare against it.
CoppeliaSim, PyRep and RLBench cannot come from a package registry, so nothing is imported until an
environment is built, and building one without them raises RLBenchNotInstalledError saying what to install.

How it maps to LAMP's setup (ademiadeniji/lamp, common/envs.py `RLBench`; shaping from LAMP's RLBench fork,
github.com/ademiadeniji/rlbench_vlsp, read in its copy amberxie88/RLBench, rlbench/tasks/*.py):

| LAMP | here |
|---|---|
| `MoveArmThenGripper(EndEffectorPoseViaPlanning(False), Discrete())` | the same, built with keywords |
| action in [-1, 1] scaled to +-0.03 m, identity quaternion [0, 0, 0, 1] (x, y, z, w) | the same (lamp_ros.contract.ACTION_SCALE_M) |
| z step zeroed when tip z + dz >= the tip's z at reset | the same rule (`to_rlbench_action`) |
| gripper: a[3] mapped [-1, 1] -> [0, 1], Discrete opens above 0.5, so a[3] > 0 opens | a[3] >= 0.5 opens (our contract): sent as 1.0 / 0.0 |
| front + wrist RGB, RenderMode.OPENGL, render_size 128, joined side by side into one `image` | the same cameras, kept as `image_front` / `image_wrist` |
| state: `get_low_dim_data()` (gripper open, tip pose, finger joints: 10 values) | [tip x, y, z, gripper open] (our contract) |
| time_limit 150, never terminates early | max_episode_steps 150, terminated is always False |
| reward: `shaped_rewards=True` uses the fork's `Task.reward()`; else float(success so far) | reward_type 'shaped': the fork's formulas, computed here from named scene objects (so stock RLBench works too); 'sparse': float(success so far) |
| ConfigurationPathError / IKError / InvalidActionError: previous obs and reward, success False, not terminal | the same, with a logged warning and info['planning_failed'] |
| variation 0 always (never samples variations); instruction from its prompt files | variation 0; info['instruction'] = RLBench's first task description |
| pretraining: `pick_shapenet_objects` (fork only, ShapeNet meshes) | not offered: the pretraining scene is MuJoCo-only (lamp/Pretrain-v0) |

Seeding: RLBench places objects with numpy's global random state, so reset(seed=s) calls np.random.seed(s),
as RLBench's own gymnasium wrapper does.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Literal, Mapping

import gymnasium
import numpy as np
from gymnasium import spaces

from lamp_ros.contract import ACTION_DIM, ACTION_SCALE_M, DEFAULT_CONTROL_RATE_HZ, GRIPPER_OPEN_THRESHOLD

logger = logging.getLogger(__name__)

IDENTITY_QUATERNION_XYZW = (0.0, 0.0, 0.0, 1.0)
"""PyRep/RLBench order quaternions (x, y, z, w); this one means 'keep the orientation'."""

RLBENCH_ACTION_DIM = 8
"""(dx, dy, dz, qx, qy, qz, qw, gripper) for MoveArmThenGripper(EndEffectorPoseViaPlanning(delta), Discrete())."""

COPPELIASIM_LIBRARY = 'libcoppeliaSim.so.1'

INSTALL_HELP = """\
The RLBench backend needs CoppeliaSim 4.1, PyRep and RLBench; none of them comes from PyPI.
  1. CoppeliaSim 4.1.0 (Edu), e.g. for Ubuntu 20.04:
       wget https://downloads.coppeliarobotics.com/V4_1_0/CoppeliaSim_Edu_V4_1_0_Ubuntu20_04.tar.xz
       mkdir -p $HOME/CoppeliaSim && tar -xf CoppeliaSim_Edu_V4_1_0_Ubuntu20_04.tar.xz -C $HOME/CoppeliaSim --strip-components 1
     and in your shell (e.g. ~/.bashrc):
       export COPPELIASIM_ROOT=$HOME/CoppeliaSim
       export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$COPPELIASIM_ROOT
       export QT_QPA_PLATFORM_PLUGIN_PATH=$COPPELIASIM_ROOT
  2. PyRep, built against it (COPPELIASIM_ROOT must be set):  pip install git+https://github.com/stepjam/PyRep.git
  3. RLBench:  pip install git+https://github.com/stepjam/RLBench.git
On a machine without a display, CoppeliaSim also needs an X server (see PyRep's README, 'Running Headless').
None of this is needed for backend='mujoco' (gymnasium.make('lamp/PushButton-v0') etc. after `import sim`),
which runs the same tasks from pip packages."""


class RLBenchNotInstalledError(ImportError):
    """CoppeliaSim, PyRep or RLBench is missing; the message says what to install."""


# ---------------------------------------------------------------------------------------------- tasks


class SceneReader:
    """Reads named objects of the loaded RLBench task scene through PyRep, for LAMP's shaped rewards.

    Joint angles named in `reference_joints` are read once at construction (episode start): the
    shaping measures progress from there, as the fork does from its init_episode values.
    """

    def __init__(self, pyrep_objects: _PyRepObjects, robot: Any, reference_joints: tuple[str, ...]) -> None:
        self._pyrep = pyrep_objects
        self._robot = robot
        self._handles: dict[tuple[str, str], Any] = {}
        self._joint_angles_at_start = {name: self.joint_angle(name) for name in reference_joints}

    def _object(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self._handles:
            self._handles[key] = getattr(self._pyrep, kind)(name)
        return self._handles[key]

    def tip(self) -> np.ndarray:
        return np.asarray(self._robot.arm.get_tip().get_position(), dtype=np.float64)

    def shape_position(self, name: str) -> np.ndarray:
        return np.asarray(self._object('Shape', name).get_position(), dtype=np.float64)

    def sensor_position(self, name: str) -> np.ndarray:
        return np.asarray(self._object('ProximitySensor', name).get_position(), dtype=np.float64)

    def joint_position(self, name: str) -> np.ndarray:
        return np.asarray(self._object('Joint', name).get_position(), dtype=np.float64)

    def joint_angle(self, name: str) -> float:
        return float(self._object('Joint', name).get_joint_position())

    def joint_angle_at_start(self, name: str) -> float:
        return self._joint_angles_at_start[name]

    def grasped(self, shape_name: str) -> bool:
        """RLBench's GraspedCondition: the gripper holds this shape."""
        handle = self._object('Shape', shape_name).get_handle()
        return any(obj.get_handle() == handle for obj in self._robot.gripper.get_grasped_objects())


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def push_button_reward(scene: SceneReader) -> float:
    """Fork's PushButton.reward: approach the button, then -10 per metre short of the 3 mm press."""
    reach = -_distance(scene.shape_position('push_button_target'), scene.tip())
    pressed = abs(scene.joint_angle('target_button_joint') - scene.joint_angle_at_start('target_button_joint'))
    return reach + 10.0 * min(pressed - 0.003, 0.0)


def turn_tap_reward(scene: SceneReader) -> float:
    """Fork's TurnTap.reward for variation 0 (the left tap): approach the handle, plus radians turned."""
    reach = -_distance(scene.joint_position('left_joint'), scene.tip())
    turned = abs(scene.joint_angle('left_joint') - scene.joint_angle_at_start('left_joint'))
    return reach + turned


def close_microwave_reward(scene: SceneReader) -> float:
    """Fork's CloseMicrowave.reward: approach the door, minus the door joint's opening angle."""
    reach = -_distance(scene.shape_position('microwave_door'), scene.tip())
    return reach - scene.joint_angle('microwave_door_joint')


def _grasp_then_lift(scene: SceneReader, shape: str, goal_sensor: str) -> float:
    """Fork's PickUpCup / TakeLidOffSaucepan shape: exp(-distance to the object) until it is grasped,
    then 1 + exp(-distance from the object to the success sensor)."""
    if not scene.grasped(shape):
        return float(np.exp(-_distance(scene.shape_position(shape), scene.tip())))
    return 1.0 + float(np.exp(-_distance(scene.shape_position(shape), scene.sensor_position(goal_sensor))))


def pick_up_cup_reward(scene: SceneReader) -> float:
    return _grasp_then_lift(scene, 'cup1', 'success')


def take_lid_off_saucepan_reward(scene: SceneReader) -> float:
    return _grasp_then_lift(scene, 'saucepan_lid_grasp_point', 'success')


@dataclass(frozen=True)
class RLBenchTask:
    class_name: str                                   # the class in rlbench.tasks
    shaped_reward: Callable[[SceneReader], float]
    reference_joints: tuple[str, ...] = ()            # joint angles the shaping measures from


TASKS: dict[str, RLBenchTask] = {
    'push_button': RLBenchTask('PushButton', push_button_reward, ('target_button_joint',)),
    'turn_tap': RLBenchTask('TurnTap', turn_tap_reward, ('left_joint',)),
    'close_microwave': RLBenchTask('CloseMicrowave', close_microwave_reward),
    'pick_up_cup': RLBenchTask('PickUpCup', pick_up_cup_reward),
    'take_lid_off_saucepan': RLBenchTask('TakeLidOffSaucepan', take_lid_off_saucepan_reward),
}

PRETRAIN_TASK = 'pretrain'
REWARD_TYPES = ('shaped', 'sparse')


# ---------------------------------------------------------------------------------------------- actions


def to_rlbench_action(action: np.ndarray, tip_z: float, start_z: float) -> np.ndarray:
    """Our (dx, dy, dz, gripper) in [-1, 1] -> RLBench's 8-D delta-pose + discrete gripper action.

    As LAMP: +-1 moves at most ACTION_SCALE_M, the orientation is kept, and the z step is dropped
    when it would bring the tip to or above its height at reset. Values outside [-1, 1] are clipped.
    """
    action = validate_action(action)
    delta = np.clip(action[:3], -1.0, 1.0) * ACTION_SCALE_M
    if tip_z + delta[2] >= start_z:
        delta[2] = 0.0
    gripper = 1.0 if action[3] >= GRIPPER_OPEN_THRESHOLD else 0.0
    return np.concatenate([delta, IDENTITY_QUATERNION_XYZW, [gripper]])


def validate_action(action: Any) -> np.ndarray:
    """A float64 copy of the action; a clear error for a wrong shape or a non-finite value."""
    array = np.array(action, dtype=np.float64)
    if array.shape != (ACTION_DIM,):
        raise ValueError(f'action must have shape ({ACTION_DIM},) (dx, dy, dz, gripper), got shape {array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'action must be finite, got {array.tolist()}')
    return array


# ---------------------------------------------------------------------------------------------- installation


@dataclass(frozen=True)
class _PyRepObjects:
    Shape: type
    Joint: type
    ProximitySensor: type


@dataclass(frozen=True)
class _RLBenchApi:
    """The parts of RLBench and PyRep this backend uses, imported only when an env is built."""
    Environment: type
    ObservationConfig: type
    MoveArmThenGripper: type
    EndEffectorPoseViaPlanning: type
    Discrete: type
    RenderMode: Any
    tasks: ModuleType
    planning_errors: tuple[type[BaseException], ...]
    objects: _PyRepObjects


def coppeliasim_problems(environ: Mapping[str, str]) -> list[str]:
    """What is wrong with the CoppeliaSim install the environment variables point at (empty if nothing)."""
    root = environ.get('COPPELIASIM_ROOT', '')
    if not root:
        return ['COPPELIASIM_ROOT is not set']
    problems = []
    if not (Path(root) / COPPELIASIM_LIBRARY).is_file():
        problems.append(f'COPPELIASIM_ROOT={root} has no {COPPELIASIM_LIBRARY} (is CoppeliaSim 4.1 unpacked there?)')
    if not environ.get('QT_QPA_PLATFORM_PLUGIN_PATH'):
        problems.append('QT_QPA_PLATFORM_PLUGIN_PATH is not set (CoppeliaSim aborts the process without it)')
    return problems


def load_rlbench_api() -> _RLBenchApi:
    """Import RLBench and PyRep, or raise RLBenchNotInstalledError naming what is missing and how to install it."""
    problems = coppeliasim_problems(os.environ)
    if problems:
        missing = [name for name in ('pyrep', 'rlbench') if importlib.util.find_spec(name) is None]
        problems += [f"python package '{name}' is not installed" for name in missing]
        raise RLBenchNotInstalledError(_install_message(problems))
    try:
        from pyrep.const import RenderMode
        from pyrep.errors import ConfigurationPathError, IKError
        from pyrep.objects.joint import Joint
        from pyrep.objects.proximity_sensor import ProximitySensor
        from pyrep.objects.shape import Shape
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import EndEffectorPoseViaPlanning
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.backend.exceptions import InvalidActionError
        from rlbench.environment import Environment
        from rlbench.observation_config import ObservationConfig
        from rlbench import tasks
    except ImportError as error:
        raise RLBenchNotInstalledError(_install_message([f'importing RLBench/PyRep failed: {error}'])) from error
    return _RLBenchApi(
        Environment=Environment, ObservationConfig=ObservationConfig, MoveArmThenGripper=MoveArmThenGripper,
        EndEffectorPoseViaPlanning=EndEffectorPoseViaPlanning, Discrete=Discrete, RenderMode=RenderMode,
        tasks=tasks, planning_errors=(ConfigurationPathError, IKError, InvalidActionError),
        objects=_PyRepObjects(Shape=Shape, Joint=Joint, ProximitySensor=ProximitySensor))


def _install_message(problems: list[str]) -> str:
    found = '\n'.join(f'  - {problem}' for problem in problems)
    return f'The RLBench backend cannot start:\n{found}\n{INSTALL_HELP}'


# ---------------------------------------------------------------------------------------------- the env


class RLBenchEnv(gymnasium.Env):
    """One of LAMP's downstream tasks on RLBench, with our action, observation and info layout."""

    metadata = {'render_modes': ['rgb_array'], 'render_fps': DEFAULT_CONTROL_RATE_HZ}

    def __init__(self, task: str, image_size: int = 128, headless: bool = True, max_episode_steps: int = 150,
                 reward_type: Literal['shaped', 'sparse'] = 'shaped', render_mode: str | None = None) -> None:
        if task == PRETRAIN_TASK:
            raise NotImplementedError(
                "the pretraining scene is MuJoCo-only (lamp/Pretrain-v0): LAMP pretrains in 'pick_shapenet_objects' "
                'of its RLBench fork (github.com/ademiadeniji/rlbench_vlsp, branch shapenet) with ShapeNet meshes, '
                'which stock RLBench lacks')
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}; the RLBench backend has {sorted(TASKS)}')
        if not (isinstance(image_size, int) and image_size > 0):
            raise ValueError(f'image_size must be a positive int, got {image_size!r}')
        if not (isinstance(max_episode_steps, int) and max_episode_steps > 0):
            raise ValueError(f'max_episode_steps must be a positive int, got {max_episode_steps!r}')
        if reward_type not in REWARD_TYPES:
            raise ValueError(f'reward_type must be one of {REWARD_TYPES}, got {reward_type!r}')
        if render_mode not in (None, *self.metadata['render_modes']):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")

        self.task_name = task
        self.image_size = image_size
        self.max_episode_steps = max_episode_steps
        self.reward_type = reward_type
        self.render_mode = render_mode
        self._spec = TASKS[task]
        image = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict({
            'image_front': image,
            'image_wrist': image,
            'state': spaces.Box(-np.inf, np.inf, (4,), np.float32),   # tip x, y, z (m), gripper open (0/1)
        })
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

        self._api = load_rlbench_api()
        self._environment = self._api.Environment(
            action_mode=self._api.MoveArmThenGripper(
                arm_action_mode=self._api.EndEffectorPoseViaPlanning(absolute_mode=False),
                gripper_action_mode=self._api.Discrete()),
            obs_config=self._observation_config(),
            headless=headless)                        # shaped_rewards off (default): its reward is float(success)
        self._environment.launch()
        self._task_env = self._environment.get_task(getattr(self._api.tasks, self._spec.class_name))

        self._instruction = ''
        self._start_tip_z = 0.0
        self._steps: int | None = None                # None: reset() needed
        self._episode_success = False
        self._scene: SceneReader | None = None
        self._last_obs: dict[str, np.ndarray] | None = None
        self._last_reward = 0.0

    def _observation_config(self) -> Any:
        """Front and wrist RGB at image_size (OpenGL, as LAMP), tip pose and gripper state; nothing else."""
        config = self._api.ObservationConfig()
        config.set_all(False)
        for camera in (config.front_camera, config.wrist_camera):
            camera.rgb = True
            camera.image_size = (self.image_size, self.image_size)
            camera.render_mode = self._api.RenderMode.OPENGL
        config.gripper_pose = True
        config.gripper_open = True
        return config

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            np.random.seed(seed)                      # RLBench samples placements from numpy's global state
        descriptions, rlbench_obs = self._task_env.reset()
        self._instruction = str(descriptions[0])
        obs = self._to_observation(rlbench_obs)
        self._start_tip_z = float(rlbench_obs.gripper_pose[2])
        robot = self._task_env._task.robot             # RLBench exposes no public robot handle; LAMP reads it here too
        self._scene = SceneReader(self._api.objects, robot, self._spec.reference_joints)
        self._steps = 0
        self._episode_success = False
        self._last_obs = obs
        self._last_reward = self._reward()
        return obs, {'success': False, 'instruction': self._instruction}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._steps is None or self._last_obs is None:
            raise RuntimeError('call reset() before step() (and after an episode is truncated)')
        tip_z = float(self._last_obs['state'][2])
        rlbench_action = to_rlbench_action(action, tip_z=tip_z, start_z=self._start_tip_z)
        info: dict[str, Any] = {'instruction': self._instruction, 'planning_failed': False}
        try:
            rlbench_obs, success_reward, _ = self._task_env.step(rlbench_action)
        except self._api.planning_errors as error:
            # As LAMP: the move did not happen; repeat the last observation and reward, no success, go on.
            logger.warning('RLBench could not execute action %s: %s', rlbench_action.tolist(), error)
            obs = {key: value.copy() for key, value in self._last_obs.items()}
            reward, success = self._last_reward, False
            info.update(planning_failed=True, planning_error=f'{type(error).__name__}: {error}')
        else:
            success = bool(success_reward >= 1.0)
            self._episode_success = self._episode_success or success
            obs = self._to_observation(rlbench_obs)
            reward = self._reward()
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        if truncated:
            self._steps = None
        self._last_obs, self._last_reward = obs, reward
        info['success'] = success
        return obs, reward, False, truncated, info

    def _reward(self) -> float:
        if self.reward_type == 'sparse':
            return float(self._episode_success)
        assert self._scene is not None
        return float(self._spec.shaped_reward(self._scene))

    def _to_observation(self, rlbench_obs: Any) -> dict[str, np.ndarray]:
        shape = (self.image_size, self.image_size, 3)
        images = {}
        for key, image in (('image_front', rlbench_obs.front_rgb), ('image_wrist', rlbench_obs.wrist_rgb)):
            image = np.asarray(image)
            if image.shape != shape or image.dtype != np.uint8:
                raise RuntimeError(f'RLBench returned {key} of shape {image.shape} {image.dtype}, expected {shape} uint8')
            images[key] = image.copy()
        tip = np.asarray(rlbench_obs.gripper_pose, dtype=np.float32)[:3]
        state = np.concatenate([tip, [np.float32(rlbench_obs.gripper_open)]]).astype(np.float32)
        return {**images, 'state': state}

    @property
    def instruction(self) -> str:
        return self._instruction

    def render(self) -> np.ndarray | None:
        """The last front image (render_mode 'rgb_array'), as LAMP's videos show it."""
        if self.render_mode != 'rgb_array' or self._last_obs is None:
            return None
        return self._last_obs['image_front'].copy()

    def close(self) -> None:
        """Shut CoppeliaSim down; safe to call twice."""
        environment = getattr(self, '_environment', None)
        if environment is not None:
            environment.shutdown()
            self._environment = None
        super().close()


def make_rlbench_env(task: str, image_size: int = 128, headless: bool = True, max_episode_steps: int = 150,
                     **kwargs: Any) -> gymnasium.Env:
    """Build `task` (push_button, turn_tap, close_microwave, pick_up_cup, take_lid_off_saucepan) on RLBench.

    kwargs: reward_type ('shaped' as LAMP's finetuning, or 'sparse'), render_mode (None or 'rgb_array').
    Raises RLBenchNotInstalledError (an ImportError) when CoppeliaSim, PyRep or RLBench is missing.
    """
    return RLBenchEnv(task, image_size=image_size, headless=headless, max_episode_steps=max_episode_steps, **kwargs)
