"""gripper node: safety/gripper_action (continuous, already through the safety layer) -> robot/gripper_cmd
(0 closed / 1 open) with hysteresis and a switch-rate limit. The current command is sent with every action,
not only when it changes: a robot reset opens the gripper behind this node's back (sim_arm, a real arm's home
routine), and a policy that keeps asking "closed" must get it closed at once, not at the next periodic re-send
(a push landed with open fingers straddling the button in 2 of 10 deploy-graph episodes before this). Also
re-sent periodically, so a driver that missed a message (or restarted) converges while no actions arrive."""
from __future__ import annotations

import math

from rclpy.node import Node
from std_msgs.msg import Float32, Float64

from lamp_ros import contract as c
from lamp_ros.core.gripper import GripperConfig, GripperLogic
from lamp_ros.ros.node_process import declare, run_node
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile


class GripperNode(Node):
    def __init__(self) -> None:
        super().__init__('gripper')
        d = GripperConfig()
        self.logic = GripperLogic(GripperConfig(
            open_threshold=declare(self, 'open_threshold', d.open_threshold,
                                   'Gripper action at or above this opens the gripper.'),
            hysteresis=declare(self, 'hysteresis', d.hysteresis,
                               'The action must pass the threshold by this much to switch.'),
            min_switch_interval_s=declare(self, 'min_switch_interval_s', d.min_switch_interval_s,
                                          'At most one open/close switch per this many seconds.')))
        republish_hz = declare(self, 'republish_rate_hz', 2.0, 'Re-send the current command at this rate, Hz.')
        self.faults = node_fault_log(self, 'input refused')
        self.pub = self.create_publisher(Float64, c.GRIPPER_CMD.name, profile(c.GRIPPER_CMD))
        self.create_subscription(Float32, c.SAFE_GRIPPER_ACTION.name, self._on_action, profile(c.SAFE_GRIPPER_ACTION))
        self.create_timer(1.0 / republish_hz, self._on_timer)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_action(self, msg: Float32) -> None:
        if not math.isfinite(msg.data):
            self.faults.fault(c.SAFE_GRIPPER_ACTION.name, 'non_finite',
                              f'non-finite gripper action {msg.data}: ignored')
            return
        self._publish(self.logic.update(self._now(), msg.data))

    def _on_timer(self) -> None:
        self._publish(self.logic.poll(self._now()))

    def _publish(self, changed: float | None) -> None:
        """Send the current command (none before the first action); log only a switch."""
        if changed is not None:
            self.get_logger().info(f"gripper -> {'open' if changed else 'closed'}")
        if self.logic.command is not None:
            self.pub.publish(Float64(data=self.logic.command))


def main(args: list[str] | None = None) -> int:
    return run_node(GripperNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
