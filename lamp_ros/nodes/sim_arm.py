"""sim_arm node: the simulated Franka Panda (sim/, MuJoCo) standing where a real arm driver stands, with the same topics.

It drives the same scene as the gym environments (sim.scene.LampScene, parameter `task`: push_button,
turn_tap, close_microwave, pick_up_cup, take_lid_off_saucepan or pretrain). Each tick (the control
rate) it applies the latest safe twist from robot/ee_twist_cmd (zero if none arrived within
cmd_timeout_s: a driver-side watchdog, independent of the safety node's) through
LampScene.apply_velocity, the one motion function the gym env's step uses too, for one period;
then it renders the front camera and publishes camera/image_raw (and, with wrist_camera, the wrist camera
on camera/wrist/image_raw, same stamp), robot/ee_pose and
robot/gripper_state, plus what only a simulator knows: sim/success (the task's success test), with
publish_task_reward the task's shaped reward on `reward` (stamped with the image it belongs to), so
finetuning in sim can use the task reward where a real robot uses the reward model, and with
publish_expert_action the scripted expert's action on sim/expert_action (what a scripted operator drives with).
robot/reset starts a new randomized episode with the arm at home.
"""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32MultiArray, Float64
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.ros.convert import action_msg, gripper_state_msg, image_msg, pose_msg, twist_linear
from lamp_ros.ros.node_process import declare, run_node
from lamp_ros.ros.interfaces import profile, publisher_profile
from sim.config import SceneConfig
from sim.experts import make_expert
from sim.scene import LampScene


class SimArmNode(Node):
    def __init__(self) -> None:
        super().__init__('sim_arm')
        rate = declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ, 'Simulation tick and camera rate, Hz.')
        size = declare(self, 'image_size', [128, 128], 'Rendered camera image [height, width], pixels.')
        self.frame_id = declare(self, 'base_frame_id', 'base', 'Robot base frame of poses and twists.')
        self.camera_frame_id = declare(self, 'camera_frame_id', 'camera_front', 'frame_id of camera images.')
        self.cmd_timeout_s = declare(self, 'cmd_timeout_s', 0.25,
                                     'Driver-side watchdog: no twist for this long -> stand still.')
        self.seed = declare(self, 'seed', 0, 'Seed of the first episode; later resets continue its sequence.')
        task = declare(self, 'task', 'push_button', 'Simulated task scene: push_button, turn_tap, close_microwave, '
                       'pick_up_cup, take_lid_off_saucepan or pretrain.')
        randomize = declare(self, 'randomize', True, 'Visual domain randomization per episode (textures, lights, ...).')
        self.publish_task_reward = declare(self, 'publish_task_reward', False,
                                           "Publish the task's shaped reward on 'reward' (sim finetuning).")
        self.publish_expert_action = declare(self, 'publish_expert_action', False,
                                             "Publish the scripted expert's action on sim/expert_action each tick.")
        self.wrist_camera = declare(self, 'wrist_camera', True,
                                    'Also render the wrist camera and publish it on camera/wrist/image_raw.')
        declare(self, 'camera_enabled', True,
                'Publish camera images (set false at run time to simulate a camera dropout).')
        self.period = 1.0 / rate
        self.scene = LampScene(task, SceneConfig(image_height=int(size[0]), image_width=int(size[1]),
                                                 control_dt=self.period, randomize=bool(randomize)))
        self.scene.reset(seed=self.seed)
        self.episode = 0
        self.velocity = np.zeros(3)
        self.velocity_t = -math.inf
        self.gripper_open = True

        self.image_pub = self.create_publisher(Image, c.CAMERA_IMAGE.name, profile(c.CAMERA_IMAGE))
        self.wrist_pub = self.create_publisher(Image, c.WRIST_CAMERA_IMAGE.name, profile(c.WRIST_CAMERA_IMAGE))
        self.pose_pub = self.create_publisher(PoseStamped, c.EE_POSE.name, publisher_profile(c.EE_POSE))
        self.gripper_pub = self.create_publisher(JointState, c.GRIPPER_STATE.name,
                                                 publisher_profile(c.GRIPPER_STATE))
        self.success_pub = self.create_publisher(Bool, c.SIM_SUCCESS.name, profile(c.SIM_SUCCESS))
        self.reward_pub = self.create_publisher(Vector3Stamped, c.REWARD.name, profile(c.REWARD))
        self.expert = make_expert(task) if self.publish_expert_action else None
        self.expert_pub = self.create_publisher(Float32MultiArray, c.SIM_EXPERT_ACTION.name,
                                                profile(c.SIM_EXPERT_ACTION))
        self.step = 0
        self.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, self._on_twist, profile(c.EE_TWIST_CMD))
        self.create_subscription(Float64, c.GRIPPER_CMD.name, self._on_gripper, profile(c.GRIPPER_CMD))
        self.create_service(Trigger, c.ROBOT_RESET_SERVICE, self._on_reset)
        self.create_timer(self.period, self._tick)
        self.get_logger().info(f'simulated arm up: task {task}, {rate} Hz, images {size[1]}x{size[0]}, '
                               f'instruction "{self.scene.instruction}"')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_twist(self, msg: TwistStamped) -> None:
        v = twist_linear(msg)
        if msg.header.frame_id and msg.header.frame_id != self.frame_id:
            self.get_logger().error(f"twist in frame '{msg.header.frame_id}', expected '{self.frame_id}': ignored",
                                    throttle_duration_sec=5.0)
            return
        if not np.all(np.isfinite(v)):
            self.get_logger().error(f'non-finite twist {v.tolist()} ignored; standing still', throttle_duration_sec=5.0)
            self.velocity = np.zeros(3)
            return
        self.velocity, self.velocity_t = v, self._now()

    def _on_gripper(self, msg: Float64) -> None:
        if not math.isfinite(msg.data):
            self.get_logger().error(f'non-finite gripper command {msg.data} ignored', throttle_duration_sec=5.0)
            return
        self.gripper_open = msg.data >= 0.5

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.episode += 1
        self.scene.reset()                       # the next episode of the seeded sequence
        self.velocity, self.velocity_t = np.zeros(3), -math.inf
        self.gripper_open = True
        self.step = 0
        response.success, response.message = True, f'episode {self.episode}: arm at home, "{self.scene.instruction}"'
        self.get_logger().info(response.message)
        return response

    def _tick(self) -> None:
        fresh = self._now() - self.velocity_t <= self.cmd_timeout_s
        self.scene.apply_velocity(self.velocity if fresh else np.zeros(3), self.gripper_open, self.period)
        stamp = self.get_clock().now().to_msg()
        if self.get_parameter('camera_enabled').value:
            self.image_pub.publish(image_msg(self.scene.render('front'), stamp, self.camera_frame_id))
            if self.wrist_camera:
                self.wrist_pub.publish(image_msg(self.scene.render('wrist'), stamp, 'camera_wrist'))
        self.pose_pub.publish(pose_msg(self.scene.ee_position(), self.scene.ee_quaternion(), stamp, self.frame_id))
        self.gripper_pub.publish(gripper_state_msg(self.scene.gripper_opening(), stamp))
        self.success_pub.publish(Bool(data=bool(self.scene.success())))
        if self.publish_task_reward:
            reward = Vector3Stamped()
            reward.header.stamp, reward.header.frame_id = stamp, self.camera_frame_id
            reward.vector.x = reward.vector.y = float(self.scene.reward())
            reward.vector.z = float(self.step)
            self.reward_pub.publish(reward)
        if self.expert is not None:
            self.expert_pub.publish(action_msg(self.expert.act(self.scene)))
        self.step += 1

    def on_shutdown(self) -> None:
        self.scene.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SimArmNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
