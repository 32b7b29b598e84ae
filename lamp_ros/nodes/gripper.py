"""gripper node: safety/gripper_action (continuous, already through the safety layer) -> robot/gripper_cmd
(0 closed / 1 open) with hysteresis and a switch-rate limit. The current command is sent with every action,
not only when it changes: a robot reset opens the gripper behind this node's back (sim_arm, a real arm's home
routine), and a policy that keeps asking "closed" must get it closed at once, not at the next periodic re-send
(a push landed with open fingers straddling the button in 2 of 10 deploy-graph episodes before this). Also
re-sent periodically, so a driver that missed a message (or restarted) converges while no actions arrive.

With `interface: gripper_command` (or `parallel_gripper_command`) the command also goes to a control_msgs action
server (`action_name`) as a goal position (`open_position` / `closed_position`) and `max_effort`: on a change, and
again after a failed or lost goal (core/gripper_goals.py). The Float64 topic stays for simple drivers."""
from __future__ import annotations

import math

from rclpy.node import Node
from std_msgs.msg import Float32, Float64

from lamp_ros import contract as c
from lamp_ros.core.gripper import GripperConfig, GripperLogic
from lamp_ros.core.gripper_goals import GoalTracker, GripperGoalConfig
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.node_process import BadParameter, declare, run_node
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
        self.goals, self.action = self._action_client()
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
        if self.action is not None and self.goals.due(self.logic.command, self._now()):
            self._send_goal(self.logic.command)

    # --- control_msgs action (interface: gripper_command | parallel_gripper_command) ---------------------
    def _action_client(self) -> tuple[GoalTracker | None, object | None]:
        interface = declare(self, 'interface', 'topic', "'topic': robot/gripper_cmd only; 'gripper_command' or "
                            "'parallel_gripper_command': also a control_msgs action goal to action_name.")
        d = GripperGoalConfig()
        action_name = declare(self, 'action_name', '/gripper_controller/gripper_cmd',
                              'The control_msgs gripper action server.')
        try:
            config = GripperGoalConfig(
                open_position=declare(self, 'open_position', d.open_position, 'Goal position when open.'),
                closed_position=declare(self, 'closed_position', d.closed_position, 'Goal position when closed.'),
                max_effort=declare(self, 'max_effort', d.max_effort, 'Goal effort limit (0: the controller\'s).'),
                goal_timeout_s=declare(self, 'goal_timeout_s', d.goal_timeout_s,
                                       'A goal without a result after this long is sent again.'),
                retry_s=declare(self, 'retry_s', d.retry_s, 'At most one goal per this long after a failure.'))
        except ValueError as e:
            raise BadParameter(str(e)) from None
        if interface == 'topic':
            return None, None
        from lamp_ros.ros.gripper_action import ACTIONS, GripperActionClient
        if interface not in ACTIONS:
            raise BadParameter(f"interface must be 'topic' or one of {list(ACTIONS)}, got {interface!r}")
        return GoalTracker(config), GripperActionClient(self, interface, action_name, self._on_goal_result)

    def _send_goal(self, command: float) -> None:
        self.goals.sent(command, self._now())
        if not self.action.ready:
            self.goals.finished(command, False, 'action server not answering')
            self.faults.fault('gripper_action', 'no_server', 'gripper action server not answering: gripper held, '
                              f'asking again every {self.goals.config.retry_s:g} s')
            return
        self.action.send(command, self.goals.position(command), self.goals.config.max_effort)

    def _on_goal_result(self, command: float, ok: bool, why: str) -> None:
        self.goals.finished(command, ok, why)
        if not ok:
            self.faults.fault('gripper_action', 'goal_failed', f'gripper goal failed: {why}')

    def health(self) -> Health:
        if self.action is None:
            return Health('ok', 'robot/gripper_cmd', {'command': self.logic.command})
        outcome = self.goals.outcome or 'in flight'
        level = 'ok' if outcome in ('done', 'in flight') or self.goals.sent_command is None else 'warn'
        return Health(level, f'gripper goal: {outcome}', {'command': self.logic.command})


def main(args: list[str] | None = None) -> int:
    return run_node(GripperNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
