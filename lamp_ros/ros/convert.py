"""numpy <-> ROS message conversions used across the nodes (the only place that knows field layouts)."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, MultiArrayDimension

from lamp_ros.contract import GRIPPER_JOINT, IMAGE_ENCODING
from lamp_ros.core.calibration import Calibration
from lamp_ros.core.images import decode_compressed, decode_image


def to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def image_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    h, w = rgb.shape[:2]
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = h, w
    msg.encoding = IMAGE_ENCODING
    msg.is_bigendian = 0
    msg.step = w * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def camera_info_msg(calibration: Calibration, stamp: Time, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = calibration.width, calibration.height
    msg.distortion_model = calibration.distortion_model
    msg.d = [float(v) for v in calibration.d]
    msg.k = [float(v) for v in calibration.k.ravel()]
    msg.r = [float(v) for v in calibration.r.ravel()]
    msg.p = [float(v) for v in calibration.p.ravel()]
    return msg


def compressed_array(msg: CompressedImage) -> np.ndarray:
    """BGR (H, W, 3) uint8 of a CompressedImage (JPEG or PNG); raises ImageRejected with the reason."""
    return decode_compressed(msg.format, msg.data)


def image_array(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 rgb of an Image (rgb8: a view; bgr8, mono8: converted); raises ImageRejected with the
    reason otherwise."""
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def pose_msg(position: np.ndarray, quat_wxyz: np.ndarray, stamp: Time, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.w, q.x, q.y, q.z = (float(v) for v in quat_wxyz)
    return msg


def pose_arrays(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z])


def twist_msg(linear: np.ndarray, stamp: Time, frame_id: str) -> TwistStamped:
    msg = TwistStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
    return msg


def twist_linear(msg: TwistStamped) -> np.ndarray:
    v = msg.twist.linear
    return np.array([v.x, v.y, v.z])


def gripper_state_msg(opening: float, stamp: Time) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = [GRIPPER_JOINT]
    msg.position = [float(opening)]
    return msg


def gripper_opening(msg: JointState) -> float:
    """Opening of the 'gripper' joint; ValueError if the message doesn't carry it."""
    names = list(msg.name)
    if GRIPPER_JOINT not in names or len(msg.position) != len(names):
        raise ValueError(f"JointState without a '{GRIPPER_JOINT}' position (names {names})")
    return float(msg.position[names.index(GRIPPER_JOINT)])


def action_msg(action: np.ndarray) -> Float32MultiArray:
    msg = Float32MultiArray()
    values = [float(v) for v in action]
    msg.layout.dim = [MultiArrayDimension(label='action', size=len(values), stride=len(values))]
    msg.data = values
    return msg


def action_array(msg: Float32MultiArray) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


APPLIED_ACTION_NAMES = ['dx', 'dy', 'dz', 'gripper', 'intervention']


def applied_action_msg(motion: np.ndarray, gripper: float, intervention: bool, stamp: Time) -> JointState:
    """What the safety layer commanded, in action units (motion = velocity / (scale * rate))."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(APPLIED_ACTION_NAMES)
    msg.position = [float(v) for v in motion] + [float(gripper), 1.0 if intervention else 0.0]
    return msg


def applied_action(msg: JointState) -> tuple[np.ndarray, bool]:
    """(action [4], intervention) from a control/applied_action message; ValueError if malformed."""
    if list(msg.name) != APPLIED_ACTION_NAMES or len(msg.position) != len(APPLIED_ACTION_NAMES):
        raise ValueError(f'applied action with names {list(msg.name)}, expected {APPLIED_ACTION_NAMES}')
    values = np.asarray(msg.position, dtype=np.float32)
    return values[:4], bool(values[4] > 0.5)
