"""FAKE rlbench.observation_config: CameraConfig and ObservationConfig with the real fields and defaults."""
from __future__ import annotations

from pyrep.const import RenderMode


class CameraConfig:
    def __init__(self, rgb: bool = True, depth: bool = True, point_cloud: bool = True, mask: bool = True,
                 image_size: tuple[int, int] = (128, 128), render_mode: RenderMode = RenderMode.OPENGL3) -> None:
        self.rgb = rgb
        self.depth = depth
        self.point_cloud = point_cloud
        self.mask = mask
        self.image_size = image_size
        self.render_mode = render_mode

    def set_all(self, value: bool) -> None:
        self.rgb = value
        self.depth = value
        self.point_cloud = value
        self.mask = value


class ObservationConfig:
    def __init__(self) -> None:
        self.left_shoulder_camera = CameraConfig()
        self.right_shoulder_camera = CameraConfig()
        self.overhead_camera = CameraConfig()
        self.wrist_camera = CameraConfig()
        self.front_camera = CameraConfig()
        self.joint_velocities = True
        self.joint_positions = True
        self.joint_forces = True
        self.gripper_open = True
        self.gripper_pose = True
        self.gripper_matrix = False
        self.gripper_joint_positions = False
        self.gripper_touch_forces = False
        self.wrist_camera_matrix = False
        self.task_low_dim_state = False

    def cameras(self) -> dict[str, CameraConfig]:
        """FAKE helper (not in the real API): the five cameras by observation prefix."""
        return {'left_shoulder': self.left_shoulder_camera, 'right_shoulder': self.right_shoulder_camera,
                'overhead': self.overhead_camera, 'wrist': self.wrist_camera, 'front': self.front_camera}

    def set_all(self, value: bool) -> None:
        self.set_all_high_dim(value)
        self.set_all_low_dim(value)

    def set_all_high_dim(self, value: bool) -> None:
        for camera in self.cameras().values():
            camera.set_all(value)

    def set_all_low_dim(self, value: bool) -> None:
        for name in ('joint_velocities', 'joint_positions', 'joint_forces', 'gripper_open', 'gripper_pose',
                     'gripper_matrix', 'gripper_joint_positions', 'gripper_touch_forces', 'wrist_camera_matrix',
                     'task_low_dim_state'):
            setattr(self, name, value)
