"""One simulated workcell: the Panda, the randomized room and one task, rebuilt at every reset.

`LampScene` is what both the gym environment (sim/env.py) and the ROS sim_arm node drive: reset,
move the TCP at a velocity (`apply_velocity`, the one motion function), read the TCP pose, the
gripper opening, camera images, the task's reward, success and instruction.

Each reset compiles a fresh MuJoCo model (about 25 ms), so everything that varies per episode
(textures, object meshes and scale, colours, lights, camera pose) is simply part of the model.
The episode's randomness comes from `numpy.random.default_rng([base_seed, index])`: `reset(seed)`
sets the base seed and index 0, a reset without a seed advances the index, so a seed determines
its episode completely and a seeded reset followed by unseeded ones is a reproducible sequence.
"""
from __future__ import annotations

import cv2
import mujoco
import numpy as np

from sim.config import SceneConfig
from sim.instructions import InstructionSampler
from sim.meshes import MeshLibrary
from sim.rendering import OffscreenRenderer
from sim.robot import GRIPPER_BASE, TCP_DOWN_QUAT, PandaArm, robot_spec, solve_home_joints
from sim.room import RoomTextures, add_room, add_wrist_camera
from sim.tasks import DOWNSTREAM_TASKS, TASK_NAMES, Pretrain, Task
from sim.tasks.base import EpisodeInfo
from sim.textures import SURFACES

CAMERAS = ('front', 'wrist')
VIEW_PX = 256                      # people's videos: each camera rendered at this size (the agent's stay small)


def make_task(name: str, config: SceneConfig) -> Task:
    if name in DOWNSTREAM_TASKS:
        return DOWNSTREAM_TASKS[name]()
    if name == Pretrain.name:
        return Pretrain(MeshLibrary(config.mesh_dir, config.mesh_up_axis), InstructionSampler(config.instructions),
                        config.num_objects, config.object_size_m)
    raise ValueError(f'unknown task {name!r}; choose one of {TASK_NAMES}')


class LampScene:
    def __init__(self, task: str, config: SceneConfig = SceneConfig()) -> None:
        self.config = config
        self.task = make_task(task, config)
        self._robot_spec = robot_spec(config.arm)
        add_wrist_camera(self._robot_spec, GRIPPER_BASE)
        spec = self._robot_spec
        spec.option.timestep = config.physics_dt
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC      # with impratio: grasped objects do not creep
        spec.option.impratio = 10.0
        spec.visual.quality.shadowsize = 0           # shadows and multisampling dominate CPU render time
        spec.visual.quality.offsamples = 0
        render_h, render_w = config.image_height * config.render_scale, config.image_width * config.render_scale
        spec.visual.global_.offwidth = max(render_w, VIEW_PX)
        spec.visual.global_.offheight = max(render_h, VIEW_PX)
        self._textures = RoomTextures.from_folders({s: config.texture_folder(s) for s in SURFACES}, config.texture_px)
        self._renderer = OffscreenRenderer(render_h, render_w)
        self._view_renderer: OffscreenRenderer | None = None       # people's videos, made on first use
        self._home_joints: np.ndarray | None = None
        self._base_seed: int | None = None
        self._index = 0
        self._arm: PandaArm | None = None
        self.instruction = ''

    # ------------------------------------------------------------------ episodes

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: a new randomized scene, the arm at home with the gripper open."""
        if seed is not None:
            if not (isinstance(seed, (int, np.integer)) and seed >= 0):
                raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
            self._base_seed, self._index = int(seed), 0
        elif self._base_seed is None:
            self._base_seed, self._index = int(np.random.SeedSequence().entropy), 0
        else:
            self._index += 1
        episode = EpisodeInfo(self._base_seed, self._index, self.config.randomize)
        rng = np.random.default_rng([self._base_seed, self._index])

        spec = self._robot_spec.copy()
        c = self.config
        add_room(spec, rng, self._textures, c.randomize, c.camera_jitter_m, c.camera_jitter_deg, c.light_jitter_m)
        self.task.build(spec, rng, episode)
        model = spec.compile()
        data = mujoco.MjData(model)
        if self._home_joints is None:
            self._home_joints = solve_home_joints(model, np.asarray(c.arm.home_tcp), np.asarray(TCP_DOWN_QUAT))
        self._arm = PandaArm(model, data, c.arm, self._home_joints)
        self._arm.go_home()
        self.task.bind(model, data)
        self.task.initialize()
        mujoco.mj_forward(model, data)
        self._renderer.bind(model)
        if self._view_renderer is not None:
            self._view_renderer.bind(model)
        self._cameras = {name: model.camera(name).id for name in CAMERAS}
        self.instruction = self.task.instruction(rng, episode, c.paraphrase_instructions)

    @property
    def arm(self) -> PandaArm:
        if self._arm is None:
            raise RuntimeError('call reset() before using the scene')
        return self._arm

    @property
    def model(self) -> mujoco.MjModel:
        return self.arm.model

    @property
    def data(self) -> mujoco.MjData:
        return self.arm.data

    # ------------------------------------------------------------------ the motion API (shared with ROS)

    def apply_velocity(self, ee_velocity_mps: np.ndarray, gripper_open: bool, duration_s: float) -> None:
        """Move the TCP at this velocity (m/s, world frame) for `duration_s` seconds; see PandaArm."""
        self.arm.apply_velocity(ee_velocity_mps, gripper_open, duration_s)

    def ee_position(self) -> np.ndarray:
        return self.arm.ee_position()

    def ee_quaternion(self) -> np.ndarray:
        return self.arm.ee_quaternion()

    def gripper_opening(self) -> float:
        return self.arm.gripper_opening()

    def state(self) -> np.ndarray:
        """Proprioception in sim.STATE_KEYS order: ee_x, ee_y, ee_z, gripper_opening (float32)."""
        return np.array([*self.ee_position(), self.gripper_opening()], dtype=np.float32)

    def render(self, camera: str = 'front') -> np.ndarray:
        """RGB image (H, W, 3) uint8 from 'front' (across the table at the robot) or 'wrist'."""
        if camera not in CAMERAS:
            raise ValueError(f'unknown camera {camera!r}; choose one of {CAMERAS}')
        image = self._renderer.render(self.data, self._cameras[camera])
        if self.config.render_scale == 1:
            return image
        return cv2.resize(image, (self.config.image_width, self.config.image_height), interpolation=cv2.INTER_AREA)

    def render_view(self, camera: str = 'front') -> np.ndarray:
        """RGB image (VIEW_PX, VIEW_PX, 3) for people's videos: the camera the agent sees, rendered sharp, not
        the agent's small image enlarged."""
        if camera not in CAMERAS:
            raise ValueError(f'unknown camera {camera!r}; choose one of {CAMERAS}')
        if self._view_renderer is None:
            self._view_renderer = OffscreenRenderer(VIEW_PX, VIEW_PX)
            self._view_renderer.bind(self.arm.model)
        return self._view_renderer.render(self.data, self._cameras[camera])

    def reward(self) -> float:
        return self.task.reward(self.arm)

    def success(self) -> bool:
        return self.task.success(self.arm)

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time)

    def close(self) -> None:
        """Free the renderer; the scene cannot render afterwards."""
        self._renderer.close()
        if self._view_renderer is not None:
            self._view_renderer.close()
