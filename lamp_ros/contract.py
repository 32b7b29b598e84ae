"""The interface contract of the lamp_ros graph: topic names, message types, QoS and action scaling.

Every node and tool takes names and QoS from here, so the contract lives in one place
(docs/interfaces.md documents it for humans). Names are relative so that a namespace or a
remapping moves the whole graph. This module imports no ROS: message types are given by name
and resolved by `lamp_ros.ros.interfaces` on the ROS side.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

CONTRACT_VERSION = 1
"""Bumped whenever a topic, message layout or bundle field changes incompatibly."""

ACTION_KEYS: tuple[str, ...] = ('dx', 'dy', 'dz', 'gripper')
ACTION_DIM = len(ACTION_KEYS)
"""(dx, dy, dz, gripper), each in [-1, 1]."""

ACTION_SCALE_M = 0.03
"""LAMP's action scaling: |a| = 1 moves the end effector at most 3 cm per control step."""

MAX_SPEED_MPS = 0.3
"""The safety layer's default end-effector speed limit (norm of the velocity, m/s). The sim env moves the arm
within it too, so a policy learns the motion it is deployed with (a diagonal action is not faster in sim)."""

MAX_ACCEL_MPS2 = 3.0
"""The safety layer's default acceleration limit (norm, m/s^2); the sim env applies it as well."""

MAX_INSTRUCTION_CHARS = 512
"""Longest instruction any node accepts (after stripping). The text encoders read 32 tokens; the bound keeps a
megabyte "instruction" from costing memory, log and seconds of encoding in every node that hears it."""

GRIPPER_OPEN_THRESHOLD = 0.5
"""A gripper action >= this means open (LAMP/RLBench's discrete gripper)."""

DEFAULT_CONTROL_RATE_HZ = 10.0

FINETUNE_EXPLORE_STD = 0.2
"""Finetuning's exploration: Gaussian noise of this std on the motion actions (in [-1, 1] units), in sim
(`finetune.explore_std`) and on the robot while the finetune graph runs (the policy node's `explore_std`)."""


class Qos(Enum):
    SENSOR = 'sensor'            # best effort, keep last 5, volatile (rclpy's qos_profile_sensor_data)
    STATE = 'state'              # robot state: published reliable (a default subscriber, e.g. a user's script,
                                 # gets it), subscribed best effort (any driver's publisher is taken); keep last 5
    RELIABLE = 'reliable'        # reliable, keep last 10, volatile
    LATCHED = 'latched'          # reliable, keep last 1, transient local: late joiners get the last value


@dataclass(frozen=True)
class Topic:
    name: str
    msg_type: str                # 'package/Type'
    qos: Qos
    doc: str


CAMERA_IMAGE = Topic('camera/image_raw', 'sensor_msgs/Image', Qos.SENSOR,
                     'Front camera, rgb8, stamped at capture time.')
CAMERA_INFO = Topic('camera/camera_info', 'sensor_msgs/CameraInfo', Qos.SENSOR,
                    "The front camera's calibration fitted to the published frames (camera node with "
                    'calibration_file), stamped like the image it belongs to.')
WRIST_CAMERA_IMAGE = Topic('camera/wrist/image_raw', 'sensor_msgs/Image', Qos.SENSOR,
                           'Wrist camera, rgb8, stamped at capture time (needed by bundles whose '
                           'observation.cameras lists it).')
EE_POSE = Topic('robot/ee_pose', 'geometry_msgs/PoseStamped', Qos.STATE,
                'End-effector pose in the robot base frame, metres.')
GRIPPER_STATE = Topic('robot/gripper_state', 'sensor_msgs/JointState', Qos.STATE,
                      "One joint named 'gripper': position = opening, 0 closed .. 1 fully open.")
INSTRUCTION = Topic('instruction', 'std_msgs/String', Qos.LATCHED,
                    'The current language instruction.')
POLICY_ACTION = Topic('policy/action', 'std_msgs/Float32MultiArray', Qos.RELIABLE,
                      '4 values in [-1, 1]: dx, dy, dz, gripper (>= 0.5 open).')
POLICY_STATUS = Topic('policy/status', 'std_msgs/String', Qos.LATCHED,
                      'JSON: bundle path, model version, image_size [h, w] the policy sees, state '
                      '(running/refused/waiting), reason.')
EE_TWIST_CMD = Topic('robot/ee_twist_cmd', 'geometry_msgs/TwistStamped', Qos.RELIABLE,
                     'Safe Cartesian velocity command to the arm driver, m/s, base frame.')
SAFE_GRIPPER_ACTION = Topic('safety/gripper_action', 'std_msgs/Float32', Qos.RELIABLE,
                            'Gripper action that passed the safety layer (absent while held).')
GRIPPER_CMD = Topic('robot/gripper_cmd', 'std_msgs/Float64', Qos.RELIABLE,
                    'Gripper driver command: 0 = closed, 1 = open.')
SAFETY_STATUS = Topic('safety/status', 'std_msgs/String', Qos.LATCHED,
                      'JSON: state (ok/limited/stopped/estop), active reasons, intervention count.')
ESTOP = Topic('estop', 'std_msgs/Bool', Qos.LATCHED,
              'True = emergency stop (latched in the safety layer until False is published).')

EPISODE_EVENT = Topic('episode/event', 'std_msgs/String', Qos.LATCHED,
                      "Episode boundaries: 'start' (the next image is the episode's first frame) or 'stop'. "
                      'Latched: a node whose subscription is matched just after a start (discovery takes a '
                      'moment) still hears it, instead of idling through the episode.')
EPISODE_STATUS = Topic('episode/status', 'std_msgs/String', Qos.LATCHED,
                       'JSON: episode, state (idle/running/stopped), step, max_steps, success, success_source, '
                       'label, instruction.')
EPISODE_LABEL = Topic('episode/label', 'std_msgs/String', Qos.RELIABLE,
                      "Operator's label of the current (or just stopped) episode: 'success' or 'failure'.")
SIM_SUCCESS = Topic('sim/success', 'std_msgs/Bool', Qos.SENSOR,
                    "The simulator's privileged task-success test, each tick (sim_arm only).")
SIM_EXPERT_ACTION = Topic('sim/expert_action', 'std_msgs/Float32MultiArray', Qos.SENSOR,
                          "The simulator's scripted expert's action for the scene as it is, each tick (sim_arm "
                          'with publish_expert_action only): what a scripted operator drives with.')
REWARD = Topic('reward', 'geometry_msgs/Vector3Stamped', Qos.RELIABLE,
               'Reward of one camera frame: header.stamp = that image\'s stamp; x = reward (standardized if '
               'enabled), y = raw reward-model score, z = frame index within the episode.')
TELEOP_ACTION = Topic('teleop/action', 'std_msgs/Float32MultiArray', Qos.RELIABLE,
                      "Operator's 4-D action (same units as policy/action), sent while the device is engaged.")
CONTROL_MODE = Topic('control/mode', 'std_msgs/String', Qos.LATCHED,
                     "Who may command the arm: 'auto' (teleop takes over while engaged), 'policy', 'teleop' or "
                     "'hold' (nobody: the arm stands still).")
APPLIED_ACTION = Topic('control/applied_action', 'sensor_msgs/JointState', Qos.RELIABLE,
                       "What the safety layer commanded, in action units: names dx dy dz gripper intervention "
                       "(1 = the operator's action); one per control step.")
POLICY_BUNDLE = Topic('policy/bundle', 'std_msgs/String', Qos.LATCHED,
                      'JSON {"path", "version"}: a new policy bundle on disk for the policy node to swap in.')
LEARNER_STATUS = Topic('learner/status', 'std_msgs/String', Qos.LATCHED,
                       'JSON: link state, transitions sent/stored, backlog, updates, bundle version.')
LEARNER_PROGRESS = Topic('learner/progress', 'std_msgs/String', Qos.LATCHED,
                         'JSON from the learner: updates, bundle_version, transitions_stored, episodes, robots, '
                         'train/* losses (1 Hz).')
TELEOP_STATUS = Topic('teleop/status', 'std_msgs/String', Qos.LATCHED,
                      "JSON from the teleop node: device, state ('missing'/'ready'/'engaged'), message, speed.")
REWARD_STATUS = Topic('reward/status', 'std_msgs/String', Qos.LATCHED,
                      'JSON from the reward node: state (loading/waiting/running/no_weights/refused), model, name, '
                      'checkpoint, rate_hz, standardize, instruction, reason.')

CAMERA_TOPICS: dict[str, Topic] = {'front': CAMERA_IMAGE, 'wrist': WRIST_CAMERA_IMAGE}
"""The cameras a policy may see (a bundle's observation.cameras, front first) and the topic of each."""

DIAGNOSTICS = Topic('/diagnostics', 'diagnostic_msgs/DiagnosticArray', Qos.RELIABLE,
                    "Every node's health once a second (level, message, values), for rqt_robot_monitor and "
                    'Foxglove.')

TOPICS: tuple[Topic, ...] = (CAMERA_IMAGE, CAMERA_INFO, WRIST_CAMERA_IMAGE, EE_POSE, GRIPPER_STATE, INSTRUCTION, POLICY_ACTION,
                             POLICY_STATUS, EE_TWIST_CMD, SAFE_GRIPPER_ACTION, GRIPPER_CMD,
                             SAFETY_STATUS, ESTOP, EPISODE_EVENT, EPISODE_STATUS, EPISODE_LABEL, SIM_SUCCESS,
                             SIM_EXPERT_ACTION, REWARD, TELEOP_ACTION, CONTROL_MODE, APPLIED_ACTION, POLICY_BUNDLE, LEARNER_STATUS,
                             LEARNER_PROGRESS, REWARD_STATUS, TELEOP_STATUS, DIAGNOSTICS)

ROBOT_RESET_SERVICE = 'robot/reset'  # std_srvs/Trigger, served by the arm driver: arm to home (sim: next episode)
EPISODE_START_SERVICE = 'episode/start'     # std_srvs/Trigger, served by the episode node
EPISODE_STOP_SERVICE = 'episode/stop'
EPISODE_RESET_SERVICE = 'episode/reset'     # stop, arm to home (robot/reset), then start if auto_start

IMAGE_ENCODING = 'rgb8'
GRIPPER_JOINT = 'gripper'

STATE_KEYS: tuple[str, ...] = ('ee_x', 'ee_y', 'ee_z', 'ee_qw', 'ee_qx', 'ee_qy', 'ee_qz', 'gripper_opening')
"""Names a policy bundle may list in its `state_keys`; the policy node fills them from
robot/ee_pose (position, orientation quaternion) and robot/gripper_state (opening)."""
