"""A control_msgs gripper action client behind the gripper node (`interface: gripper_command` or
`parallel_gripper_command`): ros2_controllers' GripperActionController and ParallelGripperCommand servers, Robotiq
and Franka gripper drivers. control_msgs has no wheel for a pip-only install, so it is imported here, only when
asked for, and its absence is one line. What only a ROS install with control_msgs exercises: goal construction and
the result callbacks below (the ROS-free goal logic is lamp_ros/core/gripper_goals.py, tested everywhere)."""
from __future__ import annotations

import importlib
from typing import Callable

from rclpy.action import ActionClient
from rclpy.node import Node

from lamp_ros.ros.node_process import BadParameter

ACTIONS = {'gripper_command': 'GripperCommand', 'parallel_gripper_command': 'ParallelGripperCommand'}


class GripperActionClient:
    def __init__(self, node: Node, interface: str, action_name: str,
                 on_result: Callable[[float, bool, str], None]) -> None:
        try:
            module = importlib.import_module('control_msgs.action')
        except ImportError:
            raise BadParameter(f'interface {interface!r} needs the control_msgs package, which is not installed '
                               '(apt install ros-$ROS_DISTRO-control-msgs), or use interface: topic') from None
        self.interface, self.action = interface, getattr(module, ACTIONS[interface])
        self.client = ActionClient(node, self.action, action_name)
        self.on_result = on_result

    @property
    def ready(self) -> bool:
        return self.client.server_is_ready()

    def send(self, command: float, position: float, max_effort: float) -> None:
        goal = self.action.Goal()
        if self.interface == 'gripper_command':
            goal.command.position, goal.command.max_effort = float(position), float(max_effort)
        else:                                                # a JointState command: one finger joint
            goal.command.position, goal.command.effort = [float(position)], [float(max_effort)]
        self.client.send_goal_async(goal).add_done_callback(lambda f: self._accepted(command, f))

    def _accepted(self, command: float, future) -> None:
        handle = future.result()
        if handle is None or not handle.accepted:
            self.on_result(command, False, 'goal rejected')
            return
        handle.get_result_async().add_done_callback(lambda f: self._done(command, f))

    def _done(self, command: float, future) -> None:
        response = future.result()
        ok = response is not None and response.status == 4          # action_msgs GoalStatus.STATUS_SUCCEEDED
        result = getattr(response, 'result', None)
        stalled = bool(getattr(result, 'stalled', False))
        # a gripper that stalled on an object holds it: for grasping that is success
        self.on_result(command, ok or stalled, '' if ok or stalled else f'goal ended with status '
                                                                      f'{getattr(response, "status", "?")}')
