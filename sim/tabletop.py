"""A simulated arm at a table with one push button: the stand-in for a real arm driver.

The sim_arm node drives it exactly as it would drive hardware: every control tick it hands over a
Cartesian end-effector velocity (m/s, world = robot base frame) and a gripper open/close command,
lets physics run for the tick, then reads the camera image, the end-effector pose and the gripper
opening. The "arm" is a floating parallel gripper: a mocap target moves at the commanded velocity
and drags the gripper body along through a weld constraint, so the gripper is a real rigid body
that presses the button by contact (the button cap sits on a sprung slide joint).

The scene lives in sim/assets/tabletop.xml. ROS-free (numpy + mujoco only) so it is tested directly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')   # headless offscreen rendering; must be set before mujoco loads
import mujoco  # noqa: E402  (must follow the MUJOCO_GL default above)

SCENE_XML = Path(__file__).resolve().parent / 'assets' / 'tabletop.xml'
CAMERAS = ('front', 'wrist')

BUTTON_PRESSED_FRACTION = 0.75
"""The button counts as pressed once pushed this fraction of its travel (near the bottom)."""

TARGET_LEAD_MARGIN_M = 0.001
TARGET_LEAD_TIME_S = 0.015
"""The mocap target may lead the gripper, per axis, by at most margin + time * |commanded speed|:
about twice the weld's normal following error (~0.008 s * speed), so free motion is unaffected,
but when the gripper is blocked (table, fully pressed button) the target stops instead of winding
up and crushing the contact."""


@dataclass(frozen=True)
class TabletopConfig:
    image_height: int = 128
    image_width: int = 128
    physics_dt: float = 0.002
    home_ee: tuple[float, float, float] = (0.45, -0.08, 0.20)   # TCP at reset, 16 cm above the button top
    button_xy: tuple[float, float] = (0.55, 0.08)               # nominal button centre on the table
    button_jitter_m: float = 0.0                                 # uniform +-jitter of the button xy at reset
    max_finger_speed: float = 0.05                               # m/s per finger: open <-> closed in 0.5 s
    target_low: tuple[float, float, float] = (0.15, -0.40, 0.0)  # box the TCP target is clamped to:
    target_high: tuple[float, float, float] = (0.85, 0.40, 0.45)  # over the table, at most 45 cm up

    def __post_init__(self) -> None:
        for name in ('image_height', 'image_width', 'physics_dt', 'max_finger_speed'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not self.button_jitter_m >= 0:
            raise ValueError(f'button_jitter_m must be >= 0, got {self.button_jitter_m}')
        low, high = np.asarray(self.target_low), np.asarray(self.target_high)
        if low.shape != (3,) or high.shape != (3,) or np.any(low >= high):
            raise ValueError(f'target_low {self.target_low} must be below target_high {self.target_high}')
        if np.any(np.asarray(self.home_ee) < low) or np.any(np.asarray(self.home_ee) > high):
            raise ValueError(f'home_ee {self.home_ee} lies outside the target box')


class TabletopArm:
    """The push-button scene, stepped in control ticks: apply(), then read pose, gripper and image."""

    def __init__(self, config: TabletopConfig = TabletopConfig()) -> None:
        self.config = config
        self._model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
        self._model.opt.timestep = config.physics_dt
        self._data = mujoco.MjData(self._model)
        self._target_low = np.asarray(config.target_low, dtype=np.float64)
        self._target_high = np.asarray(config.target_high, dtype=np.float64)

        model = self._model
        self._gripper_body = model.body('gripper').id
        self._gripper_qpos = [model.jnt_qposadr[model.joint(name).id]
                              for name in ('gripper_x', 'gripper_y', 'gripper_z')]
        self._target_mocap = model.body_mocapid[model.body('ee_target').id]
        self._tcp_site = model.site('tcp').id
        self._button_base_body = model.body('button_base').id
        self._button_top_site = model.site('button_top').id
        button_joint = model.joint('button').id
        self._button_qpos = model.jnt_qposadr[button_joint]
        self._button_travel = float(-model.jnt_range[button_joint][0])
        finger_joints = [model.joint(name).id for name in ('finger_left', 'finger_right')]
        self._finger_qpos = model.jnt_qposadr[finger_joints]
        self._finger_open = float(model.jnt_range[finger_joints[0]][1])
        self._finger_actuators = [model.actuator(name).id for name in ('finger_left', 'finger_right')]

        # The offscreen buffer must hold the requested image size.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, config.image_width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, config.image_height)
        self._renderer = mujoco.Renderer(model, config.image_height, config.image_width)
        self.reset()

    # ------------------------------------------------------------------ episode control

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: TCP at home, gripper open, button released, button xy jittered by `seed`."""
        model, data = self._model, self._data
        rng = np.random.default_rng(seed)
        jitter = rng.uniform(-self.config.button_jitter_m, self.config.button_jitter_m, size=2)
        model.body_pos[self._button_base_body, :2] = np.asarray(self.config.button_xy) + jitter

        mujoco.mj_resetData(model, data)
        home = np.asarray(self.config.home_ee, dtype=np.float64)
        data.qpos[self._gripper_qpos] = home
        data.mocap_pos[self._target_mocap] = home
        data.mocap_quat[self._target_mocap] = (1.0, 0.0, 0.0, 0.0)
        data.qpos[self._finger_qpos] = self._finger_open
        data.ctrl[self._finger_actuators] = self._finger_open
        data.qpos[self._button_qpos] = 0.0
        mujoco.mj_forward(model, data)

    def apply(self, ee_velocity: np.ndarray, gripper_open: bool, duration: float) -> None:
        """Move the TCP at `ee_velocity` (m/s, world frame, shape (3,)) for `duration` seconds.

        The mocap target advances by velocity * dt every physics step, clamped to the target box and
        close to the gripper (TARGET_LEAD_*); the gripper follows through the weld. The fingers
        move toward open or closed at most `max_finger_speed`. `duration` is rounded to whole
        physics steps (at least one).
        """
        velocity = np.asarray(ee_velocity, dtype=np.float64)
        if velocity.shape != (3,):
            raise ValueError(f'ee_velocity must have shape (3,), got shape {velocity.shape}')
        if not np.all(np.isfinite(velocity)):
            raise ValueError(f'ee_velocity must be finite, got {velocity.tolist()}')
        if not (np.isfinite(duration) and duration > 0):
            raise ValueError(f'duration must be a finite number > 0 seconds, got {duration}')

        model, data = self._model, self._data
        dt = model.opt.timestep
        finger_goal = self._finger_open if gripper_open else 0.0
        max_finger_step = self.config.max_finger_speed * dt
        max_lead = TARGET_LEAD_MARGIN_M + TARGET_LEAD_TIME_S * np.abs(velocity)
        for _ in range(max(1, round(duration / dt))):
            gripper_pos = data.xpos[self._gripper_body]
            target = data.mocap_pos[self._target_mocap] + velocity * dt
            target = np.clip(target, gripper_pos - max_lead, gripper_pos + max_lead)
            data.mocap_pos[self._target_mocap] = np.clip(target, self._target_low, self._target_high)

            finger_ctrl = data.ctrl[self._finger_actuators]
            data.ctrl[self._finger_actuators] = finger_ctrl + np.clip(
                finger_goal - finger_ctrl, -max_finger_step, max_finger_step)
            mujoco.mj_step(model, data)

    # ------------------------------------------------------------------ observations

    def ee_position(self) -> np.ndarray:
        """Tool centre point (midpoint between the fingertips) in the world frame, metres, shape (3,)."""
        return self._data.site_xpos[self._tcp_site].copy()

    def ee_quaternion(self) -> np.ndarray:
        """TCP orientation as a unit quaternion (w, x, y, z); its z axis points down, so about (0, 1, 0, 0)."""
        quaternion = np.empty(4)
        mujoco.mju_mat2Quat(quaternion, self._data.site_xmat[self._tcp_site])
        return quaternion

    def gripper_opening(self) -> float:
        """0 = fingers closed .. 1 = fully open, the mean of the two finger joints."""
        opening = float(np.mean(self._data.qpos[self._finger_qpos])) / self._finger_open
        return float(np.clip(opening, 0.0, 1.0))

    def button_position(self) -> np.ndarray:
        """Centre of the button cap's top face in the world frame (moves down as it is pressed)."""
        return self._data.site_xpos[self._button_top_site].copy()

    def button_depth(self) -> float:
        """How far the button cap is pushed down from its rest position, metres."""
        return float(-self._data.qpos[self._button_qpos])

    def button_pressed(self) -> bool:
        """True once the cap is pushed near the bottom of its travel: the task's success signal."""
        return self.button_depth() >= BUTTON_PRESSED_FRACTION * self._button_travel

    def render(self, camera: str = 'front') -> np.ndarray:
        """RGB image (H, W, 3) uint8 from camera 'front' (looks at the workspace) or 'wrist'."""
        if camera not in CAMERAS:
            raise ValueError(f'unknown camera {camera!r}; choose one of {CAMERAS}')
        self._renderer.update_scene(self._data, camera=camera)
        return self._renderer.render()

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self._data.time)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free the renderer's GL context; the scene cannot render afterwards."""
        self._renderer.close()

    def __enter__(self) -> TabletopArm:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
