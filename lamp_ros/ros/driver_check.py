"""Before a real arm's graph starts: is the arm's driver there? The ROS graph is asked (publishers, subscribers,
services) until every interface the driver must provide is found or a timeout passes; what is missing is named,
so `lamp-ros deploy --robot real` says "no publisher of robot/ee_pose" instead of a policy that never acts."""
from __future__ import annotations

import time
from dataclasses import dataclass

from rclpy.node import Node

from lamp_ros import contract as c


@dataclass(frozen=True)
class Interface:
    kind: str              # 'publisher' (the driver publishes), 'subscriber' (the driver listens), 'service'
    name: str

    def __str__(self) -> str:
        what = {'publisher': 'no publisher of', 'subscriber': 'no subscriber on', 'service': 'no service'}[self.kind]
        return f'{what} {self.name}'


def driver_interfaces(robot: str, mode: str, target_topic: str = '', servo_node: str = '') -> tuple[Interface, ...]:
    """What the arm's side must provide for `robot` (real: the robot/* topics; impedance: the controller's pose
    target instead of the twist; servo: MoveIt Servo's twist topic, services and status, the end-effector pose
    and robot/reset coming from our servo_adapter); finetuning also resets the arm between episodes (robot/reset)."""
    needed = [Interface('publisher', c.GRIPPER_STATE.name), Interface('subscriber', c.GRIPPER_CMD.name)]
    if robot == 'servo':
        return (*needed, Interface('subscriber', f'{servo_node}/delta_twist_cmds'),
                Interface('service', f'{servo_node}/switch_command_type'),
                Interface('service', f'{servo_node}/pause_servo'), Interface('publisher', f'{servo_node}/status'))
    needed.insert(0, Interface('publisher', c.EE_POSE.name))
    needed.append(Interface('subscriber', target_topic) if robot == 'impedance'
                  else Interface('subscriber', c.EE_TWIST_CMD.name))
    if mode == 'finetune':
        needed.append(Interface('service', c.ROBOT_RESET_SERVICE))
    return tuple(needed)


def missing(node: Node, needed: tuple[Interface, ...], timeout_s: float) -> list[Interface]:
    """The interfaces not seen on the ROS graph within `timeout_s` (discovery takes a moment: polled)."""
    end = time.monotonic() + timeout_s
    while True:
        absent = [i for i in needed if not _present(node, i)]
        if not absent or time.monotonic() >= end:
            return absent
        time.sleep(0.2)


def _present(node: Node, interface: Interface) -> bool:
    name = interface.name if interface.name.startswith('/') else '/' + interface.name
    if interface.kind == 'publisher':
        return node.count_publishers(name) > 0
    if interface.kind == 'subscriber':
        return node.count_subscribers(name) > 0
    return any(service == name for service, _ in node.get_service_names_and_types())
