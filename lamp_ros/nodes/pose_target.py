"""pose_target node: the arm adapter for Cartesian impedance controllers (robot:=impedance). It turns the safety
layer's twist (robot/ee_twist_cmd, already inside every limit) into the pose target such a controller follows
(lamp_ros/core/pose_target.py: integrated at the control rate, clipped to the workspace box, at most max_lead_m
ahead of the measured end effector, resting on the arm when the twist stops), published on `target_topic`:

    franka_ros2 cartesian impedance controller   .../equilibrium_pose   geometry_msgs/PoseStamped
    FZI cartesian_controllers                     .../target_frame       geometry_msgs/PoseStamped
    CRISP                                         .../target_pose        geometry_msgs/PoseStamped

The orientation is held at the arm's orientation when the first pose came (the policy moves in x, y, z only).
The end-effector pose (robot/ee_pose) comes from the robot's driver or state broadcaster, remapped; without a
fresh pose nothing is published (the controller holds its last target) and the reason is logged once."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node

from lamp_ros import contract as c
from lamp_ros.core.pose_target import PoseTarget, PoseTargetConfig
from lamp_ros.ros.convert import pose_arrays, pose_msg, twist_linear
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile, publisher_profile
from lamp_ros.ros.node_process import BadParameter, declare, run_node


class PoseTargetNode(Node):
    def __init__(self) -> None:
        super().__init__('pose_target')
        d = PoseTargetConfig()
        self.target_topic = declare(self, 'target_topic', '/cartesian_impedance_controller/equilibrium_pose',
                                    "The controller's pose target topic (geometry_msgs/PoseStamped).")
        self.frame_id = declare(self, 'base_frame_id', 'base', 'Base frame of poses, twists and the target.')
        self.period_s = 1.0 / declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ,
                                      'The safety layer publishes a twist per period; each moves the target.')
        self.stale_s = declare(self, 'stale_timeout_periods', 1.5,
                               'An end-effector pose older than this many periods is not used.') * self.period_s
        try:
            self.target = PoseTarget(PoseTargetConfig(
                workspace_min=tuple(declare(self, 'workspace_min', list(d.workspace_min),
                                            "The safety layer's box (set both in the params file's /**).")),
                workspace_max=tuple(declare(self, 'workspace_max', list(d.workspace_max),
                                            "The safety layer's box, upper corner.")),
                max_lead_m=declare(self, 'max_lead_m', d.max_lead_m,
                                   'The target never leads the measured end effector by more than this (m).')))
        except ValueError as e:
            raise BadParameter(str(e)) from None
        self.pose: tuple[float, np.ndarray] | None = None         # (arrival time, position)
        self.orientation: np.ndarray | None = None                # held: the arm's at the first pose
        self.published = 0
        self.faults = node_fault_log(self, 'twist not followed')
        self.pub = self.create_publisher(PoseStamped, self.target_topic, publisher_profile(c.EE_POSE))
        self.create_subscription(PoseStamped, c.EE_POSE.name, self._on_pose, profile(c.EE_POSE))
        self.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, self._on_twist, profile(c.EE_TWIST_CMD))
        self.get_logger().info(f'pose_target: safe twists -> pose targets on {self.target_topic}')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_pose(self, msg: PoseStamped) -> None:
        position, quat = pose_arrays(msg)
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quat))):
            self.faults.fault(c.EE_POSE.name, 'invalid', 'end-effector pose with NaN or inf ignored')
            return
        self.pose = (self._now(), position)
        if self.orientation is None:
            self.orientation = quat

    def _on_twist(self, msg: TwistStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.frame_id:
            self.faults.fault(c.EE_TWIST_CMD.name, 'frame', f"twist in frame '{msg.header.frame_id}', expected "
                                                              f"'{self.frame_id}': not followed")
            return
        if self.pose is None or self._now() - self.pose[0] > self.stale_s:
            self.faults.fault(c.EE_POSE.name, 'stale', f'no fresh {c.EE_POSE.name}: no pose target published')
            return
        target = self.target.step(twist_linear(msg), self.period_s, self.pose[1])
        self.pub.publish(pose_msg(target, self.orientation, self.get_clock().now().to_msg(), self.frame_id))
        self.published += 1

    def health(self) -> Health:
        values = {'target_topic': self.target_topic, 'published': self.published}
        if self.pose is None or self._now() - self.pose[0] > self.stale_s:
            return Health('warn', f'waiting for a fresh {c.EE_POSE.name}', values)
        return Health('ok', f'following the safe twist on {self.target_topic}', values)


def main(args: list[str] | None = None) -> int:
    return run_node(PoseTargetNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
