"""The room around the robot: table, floor, walls, lights and the two cameras, randomized per episode.

World frame = robot base frame: x forward (away from the robot), y to the left, z up, metres; the
table top is z = 0 and the Panda stands on it at the origin. The front camera looks back at the
robot across the table (as RLBench's front camera); the wrist camera rides on the gripper.
With `randomize`, every episode draws the table, wall and floor textures from their image folders,
jitters the lighting (direction, brightness, tint) and the front camera pose; without it the room
always looks the same (first image of each folder, nominal lights and camera).
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.textures import SURFACES, TextureFolder

TABLE_CENTRE = (0.40, 0.0, -0.02)
TABLE_HALF_SIZE = (0.65, 0.75, 0.02)
FLOOR_Z = -0.75
FRONT_CAMERA_POSITION = (1.20, 0.0, 0.60)
FRONT_CAMERA_LOOK_AT = (0.42, 0.0, 0.12)
FRONT_CAMERA_FOVY = 55.0
WRIST_CAMERA_POSITION = (-0.09, 0.0, 0.02)     # in the gripper base frame: behind the fingers
WRIST_CAMERA_TILT_DEG = 25.0                    # from the finger axis toward the table ahead
WRIST_CAMERA_FOVY = 75.0
WALLS = {  # name: (position, z axis = the plane's visible side, half size)
    'wall_back': ((-0.9, 0.0, 0.5), (1.0, 0.0, 0.0), (2.0, 1.25)),
    'wall_left': ((0.6, 1.5, 0.5), (0.0, -1.0, 0.0), (2.0, 1.25)),
    'wall_right': ((0.6, -1.5, 0.5), (0.0, 1.0, 0.0), (2.0, 1.25)),
    'wall_front': ((2.4, 0.0, 0.5), (-1.0, 0.0, 0.0), (2.0, 1.25)),
}


def frame_quat(forward: np.ndarray, up: np.ndarray, forward_axis: str = '-z') -> np.ndarray:
    """Quaternion (w, x, y, z) of a frame whose `forward_axis` points along `forward` and whose y axis
    is as close to `up` as possible (cameras look along their -z axis with y up)."""
    forward = np.asarray(forward, dtype=float) / np.linalg.norm(forward)
    y = np.asarray(up, dtype=float) - np.dot(up, forward) * forward
    y /= np.linalg.norm(y)
    z = -forward if forward_axis == '-z' else forward
    x = np.cross(y, z)
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x, y, z]).reshape(-1))
    return quat


def _plane_quat(normal: tuple[float, float, float]) -> np.ndarray:
    """Quaternion turning a plane's +z (its visible side) to `normal`."""
    quat = np.empty(4)
    mujoco.mju_quatZ2Vec(quat, np.asarray(normal, dtype=float))
    return quat


@dataclass
class RoomTextures:
    """The texture folders of the three surfaces (images are cached inside)."""
    table: TextureFolder
    wall: TextureFolder
    floor: TextureFolder

    @classmethod
    def from_folders(cls, folders: dict[str, object], size_px: int) -> RoomTextures:
        return cls(**{surface: TextureFolder(folders[surface], size_px) for surface in SURFACES})


def add_wrist_camera(spec: mujoco.MjSpec, gripper_body: str) -> None:
    """A camera on the gripper base looking past the fingertips at the table ahead."""
    tilt = np.deg2rad(WRIST_CAMERA_TILT_DEG)
    view = np.array([np.sin(tilt), 0.0, np.cos(tilt)])        # gripper frame: +z along the fingers
    spec.body(gripper_body).add_camera(name='wrist', pos=list(WRIST_CAMERA_POSITION),
                                       quat=frame_quat(view, np.array([1.0, 0.0, 0.0])).tolist(),
                                       fovy=WRIST_CAMERA_FOVY)


def add_room(spec: mujoco.MjSpec, rng: np.random.Generator, textures: RoomTextures, randomize: bool,
             camera_jitter_m: float, camera_jitter_deg: float, light_jitter_m: float) -> None:
    """Add table, floor, walls, lights and the front camera to `spec`, drawing appearance from `rng`."""
    world = spec.worldbody
    images = {surface: (folder.sample(rng) if randomize else folder.image(folder.paths[0]))
              for surface, folder in (('table', textures.table), ('wall', textures.wall), ('floor', textures.floor))}
    repeats = {'table': (2.0, 2.0), 'wall': (3.0, 2.0), 'floor': (4.0, 4.0)}
    for surface, image in images.items():
        height, width = image.shape[:2]
        texture = spec.add_texture(name=f'{surface}_texture', type=mujoco.mjtTexture.mjTEXTURE_2D,
                                   width=width, height=height, nchannel=3)
        texture.data = image.tobytes()
        material = spec.add_material(name=f'{surface}_material', texrepeat=list(repeats[surface]),
                                     specular=0.1, shininess=0.1)
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f'{surface}_texture'

    world.add_geom(name='table', type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(TABLE_CENTRE),
                   size=list(TABLE_HALF_SIZE), material='table_material', friction=[0.8, 0.005, 0.0001])
    # A plane's third size is its render grid spacing: a coarse grid keeps the software renderer fast.
    world.add_geom(name='floor', type=mujoco.mjtGeom.mjGEOM_PLANE, pos=[0.4, 0.0, FLOOR_Z], size=[3.0, 3.0, 1.5],
                   material='floor_material', contype=0, conaffinity=0)
    for name, (position, normal, half) in WALLS.items():
        world.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_PLANE, pos=list(position), size=[*half, 1.0],
                       quat=_plane_quat(normal).tolist(), material='wall_material', contype=0, conaffinity=0)

    # Lighting: one key light from above and the headlight (each light costs render time).
    key_position = np.array([0.6, 0.3, 1.6])
    brightness, ambient = 0.6, 0.3
    tint = np.ones(3)
    if randomize:
        key_position = key_position + rng.uniform(-light_jitter_m, light_jitter_m, 3) * [1.0, 1.0, 0.3]
        brightness = rng.uniform(0.35, 0.85)
        ambient = rng.uniform(0.15, 0.4)
        tint = rng.uniform(0.85, 1.0, 3)
    key_direction = np.array(FRONT_CAMERA_LOOK_AT) - key_position
    world.add_light(name='key', type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, pos=key_position.tolist(),
                    dir=(key_direction / np.linalg.norm(key_direction)).tolist(), castshadow=False,
                    diffuse=(brightness * tint).tolist(), specular=[0.15, 0.15, 0.15])
    spec.visual.headlight.ambient = (ambient * tint).tolist()
    spec.visual.headlight.diffuse = [0.25] * 3
    spec.visual.headlight.specular = [0.0] * 3

    position = np.array(FRONT_CAMERA_POSITION)
    look_at = np.array(FRONT_CAMERA_LOOK_AT)
    fovy = FRONT_CAMERA_FOVY
    if randomize:
        position = position + rng.uniform(-camera_jitter_m, camera_jitter_m, 3)
        look_at = look_at + rng.uniform(-camera_jitter_m, camera_jitter_m, 3)
        fovy += rng.uniform(-camera_jitter_deg, camera_jitter_deg)
    forward = look_at - position
    roll = np.deg2rad(rng.uniform(-camera_jitter_deg, camera_jitter_deg) if randomize else 0.0)
    side = np.cross(forward, [0.0, 0.0, 1.0])
    up = np.array([0.0, 0.0, 1.0]) * np.cos(roll) + side / np.linalg.norm(side) * np.sin(roll)
    world.add_camera(name='front', pos=position.tolist(), quat=frame_quat(forward, up).tolist(), fovy=fovy)
