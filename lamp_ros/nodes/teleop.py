"""teleop node: the operator's device -> teleop/action, at the control rate, while the operator uses it.

Back-ends (parameter `device`): keyboard (the terminal this node runs in), spacemouse, gamepad
(lamp_ros.teleop). The safety node lets teleop/action take over from the policy (control/mode 'auto'),
passes it through the same safety filter, and flags those steps as interventions on
control/applied_action; when the operator lets go, this node stops sending and control returns to the
policy after the safety node's hold-off. A missing device is reported (log, teleop/status 'missing' with
the reason) and retried every retry_s: the node stays up, so plugging the device in is enough.
"""
from __future__ import annotations

import json
import time

from rclpy.node import Node
from std_msgs.msg import Float32, Float32MultiArray, String

from lamp_ros import contract as c
from lamp_ros.ros.convert import action_msg
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import BadParameter, declare, run_node
from lamp_ros.teleop.device import DEVICES, DeviceInput, DeviceUnavailable, TeleopDevice, open_device
from lamp_ros.teleop.gamepad import GamepadConfig
from lamp_ros.teleop.keyboard import KeyboardConfig
from lamp_ros.teleop.session import TeleopSession
from lamp_ros.teleop.spacemouse import SpaceMouseConfig


class TeleopNode(Node):
    def __init__(self) -> None:
        super().__init__('teleop')
        self.device_name = declare(self, 'device', 'keyboard', f'Teleop device: one of {", ".join(DEVICES)}.')
        if self.device_name not in DEVICES:
            raise BadParameter(f"device must be one of {DEVICES}, got '{self.device_name}'")
        rate = declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ, 'teleop/action rate while engaged, Hz.')
        speed = declare(self, 'speed', 0.5, "Full deflection of the device = this fraction of the policy's full action.")
        self.retry_s = declare(self, 'retry_s', 2.0, 'A missing device is looked for again this often, s.')
        self.config = self._device_config()
        self.session = TeleopSession(speed)
        self.device: TeleopDevice | None = None
        self.message = ''
        self.actions_sent = 0
        self._next_try = 0.0
        self._status: dict = {}

        self.action_pub = self.create_publisher(Float32MultiArray, c.TELEOP_ACTION.name, profile(c.TELEOP_ACTION))
        self.status_pub = self.create_publisher(String, c.TELEOP_STATUS.name, profile(c.TELEOP_STATUS))
        self.create_subscription(Float32, c.SAFE_GRIPPER_ACTION.name,
                                 lambda msg: self.session.on_commanded_gripper(msg.data), profile(c.SAFE_GRIPPER_ACTION))
        self.create_timer(1.0 / rate, self._tick)
        self.create_timer(1.0, lambda: self._publish_status(force=True))
        self._open()

    def _device_config(self) -> object:
        k, s, g = KeyboardConfig(), SpaceMouseConfig(), GamepadConfig()
        keyboard = KeyboardConfig(
            key_hold_s=declare(self, 'keyboard.key_hold_s', k.key_hold_s,
                               'One key press moves this long (longer than the auto-repeat delay), s.'),
            repeat_hold_s=declare(self, 'keyboard.repeat_hold_s', k.repeat_hold_s,
                                  'While a key auto-repeats, motion stops this soon after the last repeat, s.'),
            repeat_gap_s=declare(self, 'keyboard.repeat_gap_s', k.repeat_gap_s,
                                 'Presses of one key closer than this count as auto-repeat, s.'))
        spacemouse = SpaceMouseConfig(
            deadzone=declare(self, 'spacemouse.deadzone', s.deadzone, 'Deflection below this (of 1) is ignored.'),
            axis_signs=tuple(declare(self, 'spacemouse.axis_signs', list(s.axis_signs),
                                     'Per axis (dx, dy, dz): 1.0 or -1.0 to flip.')),
            close_button=declare(self, 'spacemouse.close_button', s.close_button, 'Button that closes the gripper.'),
            open_button=declare(self, 'spacemouse.open_button', s.open_button, 'Button that opens the gripper.'))
        gamepad = GamepadConfig(
            deadzone=declare(self, 'gamepad.deadzone', g.deadzone, 'Stick deflection below this is ignored.'),
            axes=tuple(declare(self, 'gamepad.axes', list(g.axes), 'Joystick axis number for dx, dy, dz.')),
            axis_signs=tuple(declare(self, 'gamepad.axis_signs', list(g.axis_signs),
                                     'Per axis (dx, dy, dz): 1.0 or -1.0 to flip.')),
            deadman_button=declare(self, 'gamepad.deadman_button', g.deadman_button,
                                   'Hold this button to move (-1: a deflected stick engages by itself).'),
            close_button=declare(self, 'gamepad.close_button', g.close_button, 'Button that closes the gripper.'),
            open_button=declare(self, 'gamepad.open_button', g.open_button, 'Button that opens the gripper.'),
            index=declare(self, 'gamepad.index', g.index, 'Which gamepad, if several are plugged in.'))
        return {'keyboard': keyboard, 'spacemouse': spacemouse, 'gamepad': gamepad}[self.device_name]

    def _open(self) -> None:
        self._next_try = time.monotonic() + self.retry_s
        try:
            self.device = open_device(self.device_name, self.config)
        except DeviceUnavailable as e:
            if str(e) != self.message:           # say it once, not every retry
                self.message = str(e)
                self.get_logger().error(f'teleop device {self.device_name} unavailable: {e} '
                                        f'(trying again every {self.retry_s:g} s)')
            self._publish_status()
            return
        self.message = ''
        described = getattr(self.device, 'description', '')
        self.get_logger().info(f'teleop device {self.device_name} ready {described}'.rstrip() +
                               f'; speed {self.session.speed:g}')
        self._publish_status()

    def _tick(self) -> None:
        now = time.monotonic()
        if self.device is None:
            if now >= self._next_try:
                self._open()
            return
        was_engaged = self.session.engaged
        try:
            action = self.session.step(self.device.read(now))
        except DeviceUnavailable as e:
            self.get_logger().error(f'teleop device {self.device_name} lost: {e}')
            self.message = str(e)
            self.device.close()
            self.device = None
            self.session.step(DeviceInput())          # released: no action until it is back
            self._publish_status()
            return
        if action is not None:
            self.action_pub.publish(action_msg(action))
            self.actions_sent += 1
        if self.session.engaged != was_engaged:
            if self.session.engaged:
                self.get_logger().info('operator engaged: teleop/action takes over')
            else:
                self.get_logger().info('operator released the device')
            self._publish_status()

    def _publish_status(self, force: bool = False) -> None:
        state = 'missing' if self.device is None else 'engaged' if self.session.engaged else 'ready'
        status = {'device': self.device_name, 'state': state, 'message': self.message, 'speed': self.session.speed}
        if force or status != self._status:
            self._status = status
            self.status_pub.publish(String(data=json.dumps({**status, 'actions_sent': self.actions_sent})))

    def on_shutdown(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None


def main(args: list[str] | None = None) -> int:
    return run_node(TeleopNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
