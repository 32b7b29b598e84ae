"""servo_adapter node: the arm adapter for MoveIt Servo (robot:=servo), which drives UR (whose driver takes no
Cartesian twist), xArm, Kinova and Franka through MoveIt. It

- forwards the safety layer's twist (robot/ee_twist_cmd, already inside every limit) to `<servo_node>/
  delta_twist_cmds` (geometry_msgs/TwistStamped in the planning frame, `base_frame_id`), once servo is in twist
  mode: `<servo_node>/switch_command_type` (moveit_msgs/srv/ServoCommandType) at start and after every resume;
- pauses servo through `<servo_node>/pause_servo` (std_srvs/SetBool) while the e-stop is on, resumes on release;
- reads `<servo_node>/status` (moveit_msgs/msg/ServoStatus) into /diagnostics (singularity, collision, joint bound);
- publishes robot/ee_pose from TF (`base_frame_id` -> `tool_frame`), stamped with the transform's time;
- serves robot/reset: the end effector to `home_position` in a straight line (inside the box, which is convex)
  at `homing_speed_mps` with the safety layer's acceleration limit (lamp_ros/core/homing.py); an e-stop or a
  lost pose ends it.

The call sequencing is lamp_ros/core/servo_session.py (ROS-free, tested everywhere). moveit_msgs and tf2_ros have
no pip wheels: they are imported only here (lamp_ros/ros/servo_interfaces.py), and docs/real_robot.md says what
only an install with MoveIt exercises."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from rclpy.time import Time
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from lamp_ros import contract as c
from lamp_ros.core.homing import Homing, HomingConfig
from lamp_ros.core.servo_session import SERVO_HALTS, SERVO_STATUS, ServoCall, ServoSession
from lamp_ros.ros.convert import pose_msg, twist_linear, twist_msg
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile, publisher_profile
from lamp_ros.ros.node_process import BadParameter, declare, run_node
from lamp_ros.ros.servo_interfaces import servo_interfaces


class ServoAdapterNode(Node):
    def __init__(self) -> None:
        super().__init__('servo_adapter')
        servo = declare(self, 'servo_node', '/servo_node', "MoveIt Servo's node (its ~/ topics and services).")
        self.frame_id = declare(self, 'base_frame_id', 'base', "MoveIt Servo's planning frame: twists and poses.")
        self.tool_frame = declare(self, 'tool_frame', 'tool0', 'The end-effector frame in TF (robot/ee_pose).')
        self.period_s = 1.0 / declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ,
                                      'Rate of robot/ee_pose and of the homing motion.')
        self.reset_timeout_s = declare(self, 'reset_timeout_s', 20.0, 'robot/reset gives up after this long.')
        d = HomingConfig()
        try:
            self.homing = Homing(HomingConfig(
                home=tuple(declare(self, 'home_position', list(d.home), 'robot/reset: end-effector home (m).')),
                speed_mps=declare(self, 'homing_speed_mps', d.speed_mps, 'robot/reset: top speed (m/s).'),
                workspace_min=tuple(declare(self, 'workspace_min', list(d.workspace_min),
                                            "The safety layer's box (set both in the params file's /**).")),
                workspace_max=tuple(declare(self, 'workspace_max', list(d.workspace_max),
                                            "The safety layer's box, upper corner."))))
        except ValueError as e:
            raise BadParameter(str(e)) from None
        self.api = servo_interfaces()                    # after the parameters: a bad value is named first
        self.session = ServoSession()
        self.servo_status = (0, '')
        self.position: np.ndarray | None = None
        self.homing_done: Future | None = None
        self._homing_deadline = 0.0
        self.forwarded = 0
        self.faults = node_fault_log(self, 'twist not forwarded')
        self.twist_pub = self.create_publisher(TwistStamped, f'{servo}/delta_twist_cmds',
                                               publisher_profile(c.EE_TWIST_CMD))
        self.pose_pub = self.create_publisher(PoseStamped, c.EE_POSE.name, publisher_profile(c.EE_POSE))
        self.servo_clients = {'switch_command_type': self.create_client(self.api.ServoCommandType,
                                                                   f'{servo}/switch_command_type'),
                         'pause_servo': self.create_client(SetBool, f'{servo}/pause_servo')}
        self.create_subscription(self.api.ServoStatus, f'{servo}/status', self._on_status, 10)
        self.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, self._on_twist, profile(c.EE_TWIST_CMD))
        self.create_subscription(Bool, c.ESTOP.name, self._on_estop, profile(c.ESTOP))
        self.tf_buffer = self.api.tf2_ros.Buffer()
        self.tf_listener = self.api.tf2_ros.TransformListener(self.tf_buffer, self)
        self.create_service(Trigger, c.ROBOT_RESET_SERVICE, self._on_reset,
                            callback_group=MutuallyExclusiveCallbackGroup())     # awaits the control timer
        self.create_timer(self.period_s, self._tick)
        self.get_logger().info(f'servo_adapter: safe twists -> {servo}/delta_twist_cmds in {self.frame_id}; '
                               f'robot/ee_pose from TF {self.frame_id} -> {self.tool_frame}')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- servo_node's services -------------------------------------------------------------------------
    def _call_servo(self) -> None:
        call = self.session.next_call(self._now())
        if call is None:
            return
        client = self.servo_clients[call.service]
        if not client.service_is_ready():
            self._settle(call, False, f'{client.srv_name} not available (is servo_node running?)')
            return
        if call.service == 'pause_servo':
            request = SetBool.Request(data=bool(call.value))
        else:
            request = self.api.ServoCommandType.Request(command_type=int(call.value))
        self.session.sent(call)
        client.call_async(request).add_done_callback(lambda future: self._answered(call, future))

    def _answered(self, call: ServoCall, future: Future) -> None:
        response = future.result()
        ok = response is not None and bool(response.success)
        message = getattr(response, 'message', '') if response is not None else 'no answer'
        self._settle(call, ok, message)

    def _settle(self, call: ServoCall, ok: bool, message: str) -> None:
        """The session takes the answer; a new reason is logged once (a retried failure is not a flood)."""
        before = self.session.reason
        self.session.answered(call, ok, message, self._now())
        if self.session.reason != before:
            (self.get_logger().info if ok else self.get_logger().error)(f'servo: {self.session.reason}')

    # --- inputs ----------------------------------------------------------------------------------------
    def _on_status(self, msg) -> None:
        self.servo_status = (int(msg.code), str(msg.message))

    def _on_estop(self, msg: Bool) -> None:
        self.session.on_estop(bool(msg.data))
        if msg.data:
            self._end_homing(False, 'e-stop')

    def _on_twist(self, msg: TwistStamped) -> None:
        if self.homing_done is not None:
            return                                       # robot/reset drives the arm until it is home
        if msg.header.frame_id and msg.header.frame_id != self.frame_id:
            self.faults.fault(c.EE_TWIST_CMD.name, 'frame', f"twist in frame '{msg.header.frame_id}', expected "
                                                              f"'{self.frame_id}': not forwarded")
            return
        if not self.session.forwarding:
            self.faults.fault(c.EE_TWIST_CMD.name, 'servo', f'servo not ready: {self.session.reason}')
            return
        self._send(twist_linear(msg))
        self.forwarded += 1

    def _send(self, velocity: np.ndarray) -> None:
        self.twist_pub.publish(twist_msg(velocity, self.get_clock().now().to_msg(), self.frame_id))

    # --- control period: servo calls, the pose from TF, homing -----------------------------------------
    def _tick(self) -> None:
        self._call_servo()
        self._publish_pose()
        if self.homing_done is None:
            return
        if self.position is None:
            self._end_homing(False, f'no transform {self.frame_id} -> {self.tool_frame}')
        elif self.homing.arrived(self.position):
            self._end_homing(True, 'arm at home')
        elif self._now() > self._homing_deadline:
            self._end_homing(False, f'not home within {self.reset_timeout_s:.0f} s')
        elif self.session.forwarding:
            self._send(self.homing.step(self.position, self.period_s))

    def _publish_pose(self) -> None:
        try:
            t = self.tf_buffer.lookup_transform(self.frame_id, self.tool_frame, Time())
        except self.api.tf2_ros.TransformException as e:
            self.position = None
            self.faults.fault('tf', 'lookup', f'no transform {self.frame_id} -> {self.tool_frame}: {e}')
            return
        p, q = t.transform.translation, t.transform.rotation
        self.position = np.array([p.x, p.y, p.z])
        self.pose_pub.publish(pose_msg(self.position, np.array([q.w, q.x, q.y, q.z]), t.header.stamp,
                                       self.frame_id))

    async def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.homing_done is not None:
            response.success, response.message = False, 'a reset is already in progress'
            return response
        if self.session.estop:
            response.success, response.message = False, 'e-stop engaged: no homing motion'
            return response
        self.homing.stop()
        self._homing_deadline = self._now() + self.reset_timeout_s
        self.homing_done = done = Future()
        ok, message = await done
        response.success, response.message = ok, message
        return response

    def _end_homing(self, ok: bool, message: str) -> None:
        if self.homing_done is None:
            return
        self._send(np.zeros(3))
        self.homing.stop()
        done, self.homing_done = self.homing_done, None
        done.set_result((ok, message))
        (self.get_logger().info if ok else self.get_logger().error)(f'robot/reset: {message}')

    def health(self) -> Health:
        code, text = self.servo_status
        values = {'servo_status': SERVO_STATUS.get(code, str(code)), 'servo_message': text,
                  'forwarded': self.forwarded, 'session': self.session.reason}
        if code in SERVO_HALTS:
            return Health('error', f'servo halted: {SERVO_STATUS[code]} {text}'.strip(), values)
        if self.position is None:
            return Health('warn', f'no transform {self.frame_id} -> {self.tool_frame}', values)
        if not self.session.forwarding:
            return Health('warn', f'servo not ready: {self.session.reason}', values)
        return Health('ok', 'forwarding the safe twist to MoveIt Servo', values)


def main(args: list[str] | None = None) -> int:
    return run_node(ServoAdapterNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
