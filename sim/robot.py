"""The robot: a Franka Panda with a Robotiq 2F-85 gripper, and its Cartesian end-effector controller.

The arm model (MJCF, masses, joint limits, collision meshes) is gym-hil's, loaded from the installed
package at run time (`pip install --no-deps gym-hil==0.1.14`; nothing is copied into this repository).
We simplify it for speed: the dense visual meshes are dropped and the collision meshes are rendered
instead (the gripper's replaced by their convex hulls, which is what MuJoCo collides with anyway),
arm motors and sensors are removed.

Control is Cartesian, through a weld: a light carriage on three slide joints (x, y, z; no rotation)
carries the TCP target frame (the tool centre point, between the finger pads) and is welded to the
gripper base, so the gravity-compensated arm follows through its joints with the orientation fixed
(gripper pointing down), as LAMP's end-effector delta actions ask for. Force-limited position servos
with velocity feed-forward drive the carriage along a setpoint that moves at the commanded
velocity. Unlike a mocap target, the carriage's velocity is known to the solver, so the TCP tracks
without lag; the force limit bounds how hard the arm pushes when blocked (table, pressed button,
shut door), and the setpoint never runs ahead of the carriage by more than the servo needs for
that force, so nothing winds up.
`PandaArm.apply_velocity` is the one motion function shared by the gym environment and the ROS
sim_arm node.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from sim.meshes import TriangleMesh, convex_hull, read_mesh

GYM_HIL_INSTALL = 'pip install --no-deps gym-hil==0.1.14'
TCP_SITE = 'pinch'                       # gym-hil's site between the 2F-85 finger pads
GRIPPER_BASE = 'base'                    # the 2F-85 body welded to the target
TARGET_BODY = 'tcp_target'                 # the carriage: its joint positions are the TCP target
READY_JOINTS = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)   # Franka's "ready" pose: IK start
# TCP z axis down; the fingers close along the world x axis, the front camera's line of sight: depth is what
# a front camera sees worst (1 px of 64^2 is ~3 cm in depth, ~1.5 cm across), and along the closing axis the
# open fingers' stroke (85 mm) absorbs the error, while the pads' narrow width needs the well-seen axis.
TCP_DOWN_QUAT = (0.0, 0.7071067811865476, 0.7071067811865476, 0.0)
FINGER_CTRL_OPEN, FINGER_CTRL_CLOSED = 0.0, 255.0
DRIVER_CLOSED_RAD = 0.8                  # 2F-85 driver joint when closed on nothing
LEFT_FINGER_BODIES = ('left_follower', 'left_pad', 'left_silicone_pad')
RIGHT_FINGER_BODIES = ('right_follower', 'right_pad', 'right_silicone_pad')
GRIPPER_HULL_VERTICES = 48               # the 2F-85 meshes (56k triangles) become hulls of this size

CARRIAGE_AXES = ('x', 'y', 'z')
DRIVE_STIFFNESS = 1.0e4                  # N/m, the carriage's position servo per axis
DRIVE_DAMPING = 800.0                    # N s/m: about critical for the arm's ~14 kg effective mass at the TCP
JOINT_DAMPING = 5.0                      # N m s/rad (gym-hil: 1): damps the arm's free elbow (null-space) motion


def gym_hil_panda_xml() -> Path:
    """Path of gym-hil's panda.xml; a clear error if gym-hil is not installed."""
    found = importlib.util.find_spec('gym_hil')
    locations = list(found.submodule_search_locations or []) if found else []
    path = Path(locations[0]) / 'assets' / 'panda.xml' if locations else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f'the Franka Panda model comes from the gym-hil package; install it with '
                                f'`{GYM_HIL_INSTALL}` (its MJCF and meshes are all we use)')
    return path


@dataclass(frozen=True)
class ArmConfig:
    home_tcp: tuple[float, float, float] = (0.40, 0.0, 0.30)
    """TCP at reset (world = robot base frame, metres); by default the highest the TCP may go."""
    target_low: tuple[float, float, float] = (0.15, -0.45, 0.005)
    target_high: tuple[float, float, float] = (0.80, 0.45, 0.50)
    """Box the TCP target is clamped to: over the table, never into it."""
    height_cap: bool = True
    """LAMP's rule: the TCP may not rise above its height at reset."""
    max_force_n: float = 100.0
    """Force limit of the Cartesian drive, per axis: how hard the arm can push."""
    weld_timeconst_s: float = 0.01
    """Stiffness of the carriage-gripper weld, as MuJoCo's constraint time constant (s)."""

    def __post_init__(self) -> None:
        low, high, home = (np.asarray(v, dtype=float) for v in (self.target_low, self.target_high, self.home_tcp))
        if low.shape != (3,) or high.shape != (3,) or home.shape != (3,) or np.any(low >= high):
            raise ValueError(f'target_low {self.target_low} must lie below target_high {self.target_high} (3 values)')
        if np.any(home < low) or np.any(home > high):
            raise ValueError(f'home_tcp {self.home_tcp} lies outside the target box')
        for name in ('max_force_n', 'weld_timeconst_s'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')


def robot_spec(config: ArmConfig) -> mujoco.MjSpec:
    """gym-hil's Panda + 2F-85, simplified for rendering speed, with the TCP target and its weld."""
    spec = mujoco.MjSpec.from_file(str(gym_hil_panda_xml()))
    _simplify(spec)
    _dress(spec)
    _add_carriage(spec, config)
    return spec


def _simplify(spec: mujoco.MjSpec) -> None:
    """Collision meshes only (scaled into the spec, the gripper's as convex hulls), no arm motors, sensors or
    cameras: the weld moves the arm."""
    for geom in list(spec.geoms):          # visual-only meshes: ~190k triangles, too slow to render on a CPU
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.contype == 0 and geom.conaffinity == 0:
            spec.delete(geom)
    used = {geom.meshname for geom in spec.geoms}
    model_dir = Path(spec.modelfiledir)
    for mesh in list(spec.meshes):
        if mesh.name not in used:
            spec.delete(mesh)
            continue
        triangles = read_mesh(model_dir / mesh.file)
        triangles = TriangleMesh(triangles.vertices * np.asarray(mesh.scale), triangles.faces)
        if 'robotiq' in mesh.file:
            triangles = convex_hull(triangles, GRIPPER_HULL_VERTICES)
        mesh.file = ''
        mesh.scale = [1.0, 1.0, 1.0]
        mesh.uservert = triangles.vertices.reshape(-1).tolist()
        mesh.userface = triangles.faces.reshape(-1).tolist()
    for element in list(spec.actuators):   # arm torque motors: the weld moves the arm
        if element.name != 'fingers_actuator':
            spec.delete(element)
    for element in list(spec.sensors) + list(spec.cameras):
        spec.delete(element)


def _dress(spec: mujoco.MjSpec) -> None:
    """The collision geoms as the visible robot (white arm, dark gripper), gravity compensated, joints damped."""
    white = spec.add_material(name='robot_white', rgba=[0.92, 0.92, 0.93, 1.0], specular=0.3)
    dark = spec.add_material(name='robot_dark', rgba=[0.16, 0.16, 0.17, 1.0], specular=0.2)
    gripper_bodies = {body.name for body in spec.body('base_mount').find_all(mujoco.mjtObj.mjOBJ_BODY)}
    gripper_bodies.add('base_mount')
    for geom in spec.geoms:                # collision geoms become the visible robot
        geom.group = 0
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            geom.material = dark.name if geom.parent.name in gripper_bodies else white.name
    for body in spec.bodies:
        if body.name != 'world':
            body.gravcomp = 1.0           # as a real arm controller compensates gravity
    for index in range(1, 8):
        spec.joint(f'joint{index}').damping = [JOINT_DAMPING, 0.0, 0.0]


def _add_carriage(spec: mujoco.MjSpec, config: ArmConfig) -> None:
    """The TCP target: a carriage on three position-driven slides, welded to the gripper base."""
    # The carriage frame (world-aligned) sits at the TCP; the weld holds the gripper base where it is
    # when the TCP points down (TCP_DOWN_QUAT): base pose in carriage frame = TCP orientation * base in TCP.
    pinch = spec.site(TCP_SITE)
    rotation = np.empty(9)
    mujoco.mju_quat2Mat(rotation, np.asarray(pinch.quat, dtype=float))
    base_in_tcp = -rotation.reshape(3, 3).T @ np.asarray(pinch.pos, dtype=float)
    base_in_tcp_quat = np.empty(4)
    mujoco.mju_negQuat(base_in_tcp_quat, np.asarray(pinch.quat, dtype=float))
    down = np.empty(9)
    mujoco.mju_quat2Mat(down, np.asarray(TCP_DOWN_QUAT))
    base_in_carriage = down.reshape(3, 3) @ base_in_tcp
    base_in_carriage_quat = np.empty(4)
    mujoco.mju_mulQuat(base_in_carriage_quat, np.asarray(TCP_DOWN_QUAT), base_in_tcp_quat)
    carriage = spec.worldbody.add_body(name=TARGET_BODY, mass=0.2, inertia=[1e-4, 1e-4, 1e-4], gravcomp=1.0,
                                       explicitinertial=True)
    for axis, direction in zip(CARRIAGE_AXES, np.eye(3)):
        carriage.add_joint(name=f'{TARGET_BODY}_{axis}', type=mujoco.mjtJoint.mjJNT_SLIDE, axis=direction.tolist())
        drive = spec.add_actuator(name=f'{TARGET_BODY}_{axis}', target=f'{TARGET_BODY}_{axis}',
                                  trntype=mujoco.mjtTrn.mjTRN_JOINT, forcelimited=True,
                                  forcerange=[-config.max_force_n, config.max_force_n])
        drive.set_to_position(kp=DRIVE_STIFFNESS, kv=DRIVE_DAMPING)
    weld = spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, objtype=mujoco.mjtObj.mjOBJ_BODY,
                             name1=TARGET_BODY, name2=GRIPPER_BASE)
    weld.data[:] = [0, 0, 0, *base_in_carriage, *base_in_carriage_quat, 1.0, 0.0]
    weld.solref = [config.weld_timeconst_s, 1.0]
    weld.solimp = [0.9, 0.95, 0.001, 0.5, 2.0]


def solve_home_joints(model: mujoco.MjModel, tcp_position: np.ndarray, tcp_quat: np.ndarray) -> np.ndarray:
    """Arm joint angles that put the TCP at the given pose (damped least squares from the ready pose)."""
    data = mujoco.MjData(model)
    arm_qpos = _arm_qpos_addresses(model)
    arm_dof = [model.jnt_dofadr[model.joint(f'joint{i}').id] for i in range(1, 8)]
    site = model.site(TCP_SITE).id
    data.qpos[arm_qpos] = READY_JOINTS
    jac_pos, jac_rot = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    error, quat, quat_inv, quat_err = np.zeros(6), np.zeros(4), np.zeros(4), np.zeros(4)
    for _ in range(100):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        error[:3] = tcp_position - data.site_xpos[site]
        mujoco.mju_mat2Quat(quat, data.site_xmat[site])
        mujoco.mju_negQuat(quat_inv, quat)
        mujoco.mju_mulQuat(quat_err, tcp_quat, quat_inv)
        mujoco.mju_quat2Vel(error[3:], quat_err, 1.0)
        if np.linalg.norm(error) < 1e-9:
            break
        mujoco.mj_jacSite(model, data, jac_pos, jac_rot, site)
        jacobian = np.vstack([jac_pos, jac_rot])[:, arm_dof]
        data.qpos[arm_qpos] += jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + 1e-6 * np.eye(6), error)
    if np.linalg.norm(error) > 1e-6:
        raise ValueError(f'home TCP pose {tcp_position.tolist()} is out of the arm\'s reach')
    return data.qpos[arm_qpos].copy()


def _arm_qpos_addresses(model: mujoco.MjModel) -> list[int]:
    return [int(model.jnt_qposadr[model.joint(f'joint{i}').id]) for i in range(1, 8)]


class PandaArm:
    """The arm inside one compiled scene: put it home, move the TCP at a velocity, read its state."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, config: ArmConfig,
                 home_joints: np.ndarray) -> None:
        self.model, self.data, self.config = model, data, config
        self.home_joints = home_joints
        self._arm_qpos = _arm_qpos_addresses(model)
        self._site = model.site(TCP_SITE).id
        first_joint = model.joint(f'{TARGET_BODY}_x').id
        self._target_qpos = slice(int(model.jnt_qposadr[first_joint]), int(model.jnt_qposadr[first_joint]) + 3)
        self._target_dof = slice(int(model.jnt_dofadr[first_joint]), int(model.jnt_dofadr[first_joint]) + 3)
        first_drive = model.actuator(f'{TARGET_BODY}_x').id
        self._drives = slice(first_drive, first_drive + 3)
        self._finger_actuator = model.actuator('fingers_actuator').id
        self._drivers = [int(model.jnt_qposadr[model.joint(f'{side}_driver_joint').id]) for side in ('left', 'right')]
        self._left_bodies = {model.body(name).id for name in LEFT_FINGER_BODIES}
        self._right_bodies = {model.body(name).id for name in RIGHT_FINGER_BODIES}
        self._low = np.asarray(config.target_low, dtype=float)
        self._high = np.asarray(config.target_high, dtype=float)
        self.height_limit = float(config.target_high[2])
        self._setpoint = np.asarray(config.home_tcp, dtype=float).copy()
        self._max_lead = config.max_force_n / DRIVE_STIFFNESS

    def go_home(self) -> None:
        """Joints at the home pose, target on the TCP, gripper open; call before mj_forward."""
        data = self.data
        data.qpos[self._arm_qpos] = self.home_joints
        data.qpos[self._target_qpos] = self.config.home_tcp
        data.qvel[self._target_dof] = 0.0
        self._setpoint[:] = self.config.home_tcp
        data.ctrl[self._drives] = self._setpoint
        data.ctrl[self._finger_actuator] = FINGER_CTRL_OPEN
        top = self.config.target_high[2]
        self.height_limit = float(min(self.config.home_tcp[2], top) if self.config.height_cap else top)

    def apply_velocity(self, ee_velocity_mps: np.ndarray, gripper_open: bool, duration_s: float) -> None:
        """Move the TCP at `ee_velocity_mps` (m/s, world frame, (3,)) for `duration_s`, gripper open or closed.

        The setpoint of the carriage carrying the TCP target advances at this velocity, clamped to
        the target box and the height limit (LAMP's cap: not above the height at reset), and to within
        the servo's full-force distance of the carriage. `duration_s` is rounded to whole physics
        steps (at least one).
        """
        velocity = np.asarray(ee_velocity_mps, dtype=np.float64)
        if velocity.shape != (3,):
            raise ValueError(f'ee_velocity_mps must have shape (3,), got shape {velocity.shape}')
        if not np.all(np.isfinite(velocity)):
            raise ValueError(f'ee_velocity_mps must be finite, got {velocity.tolist()}')
        if not (np.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f'duration_s must be a finite number of seconds > 0, got {duration_s}')

        model, data = self.model, self.data
        dt = model.opt.timestep
        low, high = self._low, self._high.copy()
        high[2] = min(high[2], self.height_limit)
        data.ctrl[self._finger_actuator] = FINGER_CTRL_OPEN if gripper_open else FINGER_CTRL_CLOSED
        carriage = data.qpos[self._target_qpos]       # a view: mj_step updates it
        drives = data.ctrl[self._drives]
        setpoint, lead, feedforward = self._setpoint, self._max_lead, DRIVE_DAMPING / DRIVE_STIFFNESS
        for _ in range(max(1, round(duration_s / dt))):
            moved = np.clip(setpoint + velocity * dt, low, high)
            moving = (moved != setpoint) | (velocity == 0)    # axes held at a bound get no feed-forward
            setpoint[:] = np.clip(moved, carriage - lead, carriage + lead)
            drives[:] = setpoint + feedforward * np.where(moving, velocity, 0.0)
            mujoco.mj_step(model, data)

    def ee_position(self) -> np.ndarray:
        """TCP position (between the finger pads), world frame, metres, (3,)."""
        return self.data.site_xpos[self._site].copy()

    def ee_quaternion(self) -> np.ndarray:
        """TCP orientation (w, x, y, z); z axis pointing down, so about (0, 1, 0, 0)."""
        quaternion = np.empty(4)
        mujoco.mju_mat2Quat(quaternion, self.data.site_xmat[self._site])
        return quaternion

    def gripper_opening(self) -> float:
        """0 = closed .. 1 = fully open, from the 2F-85 driver joints."""
        closed = float(np.mean(self.data.qpos[self._drivers])) / DRIVER_CLOSED_RAD
        return float(np.clip(1.0 - closed, 0.0, 1.0))

    def target_position(self) -> np.ndarray:
        """The carriage's position: the TCP target (the TCP itself, up to the weld's small stretch)."""
        return self.data.qpos[self._target_qpos].copy()

    def grasps(self, body_ids: set[int]) -> bool:
        """True when both fingers touch one of the given bodies (the grasp test of the lift tasks)."""
        left = right = False
        model, data = self.model, self.data
        for contact in data.contact[:data.ncon]:
            bodies = (int(model.geom_bodyid[contact.geom1]), int(model.geom_bodyid[contact.geom2]))
            for finger, other in (bodies, bodies[::-1]):
                if other in body_ids:
                    left = left or finger in self._left_bodies
                    right = right or finger in self._right_bodies
        return left and right
