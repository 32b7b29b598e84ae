"""A scripted operator: the named fake of a person with a SpaceMouse, for finetuning experiments in simulation.

It watches episode/status and counts the episode's control steps on control/applied_action (episode/status
says only when an episode starts and stops), and in the first `help_episodes` episodes takes over when the policy
stalls (the episode has run `stall_steps` steps without success, lamp_ros.teleop.stall's rule): from then until the
episode ends it publishes the simulator's scripted expert action (sim/expert_action, sim_arm's
`publish_expert_action`) on teleop/action, the topic a teleop device publishes on. The safety node passes it
through the same safety filter and flags those steps as interventions, as it does for a person. No privileged
state reaches the policy or the learner: only the operator's actions do, as a person's would.

    python -m lamp_ros.nodes.scripted_operator --ros-args -p help_episodes:=20 -p stall_steps:=15
"""
from __future__ import annotations

import json

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, String

from lamp_ros import contract as c
from lamp_ros.core.episode import parse_status
from lamp_ros.ros.convert import action_array, action_msg
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import declare, run_node
from lamp_ros.teleop.stall import StallRule


class ScriptedOperatorNode(Node):
    def __init__(self) -> None:
        super().__init__('scripted_operator')
        self.rule = StallRule(declare(self, 'help_episodes', 20, 'Help in the first this many episodes only.'),
                              declare(self, 'stall_steps', 15, 'Take over after this many steps without success.'))
        rate = declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ, 'teleop/action rate while driving, Hz.')
        self.status: dict = {}
        self.steps = 0                               # control steps of the running episode
        self.expert: np.ndarray | None = None
        self.actions_sent = 0
        self.action_pub = self.create_publisher(Float32MultiArray, c.TELEOP_ACTION.name, profile(c.TELEOP_ACTION))
        self.status_pub = self.create_publisher(String, c.TELEOP_STATUS.name, profile(c.TELEOP_STATUS))
        self.create_subscription(String, c.EPISODE_STATUS.name, self._on_status, profile(c.EPISODE_STATUS))
        self.create_subscription(Float32MultiArray, c.SIM_EXPERT_ACTION.name, self._on_expert,
                                 profile(c.SIM_EXPERT_ACTION))
        self.create_subscription(JointState, c.APPLIED_ACTION.name, self._on_applied, profile(c.APPLIED_ACTION))
        self.create_timer(1.0 / rate, self._tick)
        self.create_timer(1.0, self._publish_status)

    def _on_status(self, msg: String) -> None:
        try:
            status = parse_status(msg.data)
        except ValueError as e:
            self.get_logger().error(f'{c.EPISODE_STATUS.name} ignored: {e}', throttle_duration_sec=10.0)
            return
        if status.get('episode') != self.status.get('episode') or status.get('state') != 'running':
            self.steps = 0
        self.status = status

    def _on_applied(self, msg: JointState) -> None:
        if self.status.get('state') == 'running':
            self.steps += 1

    def _on_expert(self, msg: Float32MultiArray) -> None:
        self.expert = action_array(msg)

    def _tick(self) -> None:
        if self.rule.update(self.status, self.steps) and self.expert is not None:
            self.action_pub.publish(action_msg(np.clip(self.expert, -1.0, 1.0)))
            self.actions_sent += 1

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps({
            'device': 'scripted', 'state': 'engaged' if self.rule.helping else 'ready',
            'episodes_seen': self.rule.episodes_seen, 'episodes_helped': self.rule.episodes_helped,
            'actions_sent': self.actions_sent, 'speed': 1.0, 'message': ''})))


def main(args: list[str] | None = None) -> int:
    return run_node(ScriptedOperatorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
