"""safety node: every arm command passes through here (see lamp_ros.core.safety for the rules).

policy/action or teleop/action -> [ActionArbiter] -> [SafetyFilter] -> robot/ee_twist_cmd (m/s) and
safety/gripper_action; control/applied_action reports what was commanded, in action units, with the
intervention flag (1 = the operator's action). robot/ee_twist_cmd goes out at the control rate, never
faster: an action is passed on as soon as it arrives if its slot on the grid of control periods is open (low
latency), else when the slot opens, the newest action winning. A watchdog timer stops the arm while
any stop condition holds (stale inputs, e-stop, rejected action). The latched e-stop is saved to a state
file (`estop_state_file`) and restored on start, so it survives a restart of this node after its sender
has gone: motion needs an explicit release.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, String

from lamp_ros import contract as c
from lamp_ros.core.arbiter import ActionArbiter, ArbiterConfig
from lamp_ros.core.estop_store import EstopStore, default_estop_file
from lamp_ros.core.images import ImageRejected
from lamp_ros.core.safety import Command, DownsampleReport, InterventionLog, SafetyConfig, SafetyFilter
from lamp_ros.ros.convert import action_array, applied_action_msg, image_array, pose_arrays, to_sec, twist_msg
from lamp_ros.ros.node_process import declare, run_node
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile

MIN_LIVE_IMAGE_SIDE = 16  # a frame smaller than this is no camera picture (a policy needs far more)
SLOT_MARGIN_S = 0.001      # a deferred command's timer fires this much after its slot (timers are never early)


def declare_config(node: Node) -> SafetyConfig:
    """The filter's parameters; their defaults are SafetyConfig's (the one source of the safe values)."""
    d = SafetyConfig()
    return SafetyConfig(
        control_rate_hz=declare(node, 'control_rate_hz', d.control_rate_hz, 'Control rate of the policy, Hz.'),
        action_scale_m=declare(node, 'action_scale_m', d.action_scale_m,
                               'Metres per control step for an action of magnitude 1 (LAMP: 0.03).'),
        workspace_min=tuple(declare(node, 'workspace_min', list(d.workspace_min),
                                    'Workspace box lower corner [x, y, z], metres, base frame.')),
        workspace_max=tuple(declare(node, 'workspace_max', list(d.workspace_max),
                                    'Workspace box upper corner [x, y, z], metres, base frame.')),
        max_step_m=declare(node, 'max_step_m', d.max_step_m, 'Largest translation per control step along any axis, metres.'),
        max_speed_mps=declare(node, 'max_speed_mps', d.max_speed_mps, 'Largest EE speed, m/s.'),
        max_accel_mps2=declare(node, 'max_accel_mps2', d.max_accel_mps2,
                               'Largest change of commanded velocity per second, m/s^2 (stops are immediate).'),
        max_jerk_mps3=declare(node, 'max_jerk_mps3', d.max_jerk_mps3,
                              'Largest growth of the commanded acceleration per second, m/s^3 (binds above ~20 Hz; '
                              'workspace braking and stops are exempt).'),
        max_hold_s=declare(node, 'max_hold_s', d.max_hold_s,
                           'Longest the arm may keep executing one twist after it is published (its driver\'s '
                           'command timeout, plus a tick), s: the workspace box is kept for that worst case.'),
        stale_timeout_periods=declare(node, 'stale_timeout_periods', d.stale_timeout_periods,
                                      'Image, EE pose or action older than this many control periods -> stop, '
                                      'until the input\'s own rate is measured (10 arrivals).'),
        stale_margin=declare(node, 'stale_margin', d.stale_margin,
                             "Then an input is stale when older than this times the p99 of its recent intervals,"),
        stale_min_s=declare(node, 'stale_min_s', d.stale_min_s, 'but at least this many seconds'),
        stale_max_periods=declare(node, 'stale_max_periods', d.stale_max_periods,
                                  'and at most this many control periods (a dead input stops the arm within 2).'),
        startup_hold_s=declare(node, 'startup_hold_s', d.startup_hold_s,
                               'No motion for this long after start (time to receive a latched e-stop).'),
        startup_max_hold_s=declare(node, 'startup_max_hold_s', d.startup_max_hold_s,
                                   'Longer, up to this, while a known e-stop publisher has not delivered its '
                                   'latched state; a release heard this early does not lift a restored e-stop.'))


class SafetyNode(Node):
    def __init__(self) -> None:
        super().__init__('safety')
        cfg = declare_config(self)
        self.frame_id = declare(self, 'base_frame_id', 'base', 'Robot base frame: of the EE pose and the published twist.')
        watchdog_hz = declare(self, 'watchdog_rate_hz', 50.0, 'How often stale inputs are checked, Hz.')
        self.min_image_side = declare(self, 'min_image_side', MIN_LIVE_IMAGE_SIDE,
                                      'Camera frames that fail the rgb8 checks or are smaller than this many pixels '
                                      'on a side do not count as a live camera.')
        self.estop_store = EstopStore(Path(declare(
            self, 'estop_state_file', str(default_estop_file(f"{self.get_namespace().rstrip('/')}/{self.get_name()}")),
            'Where the latched e-stop is saved, to survive a restart of this node (one file per robot).')))
        saved = self.estop_store.load()
        self.estop_store.save(saved.engaged)                   # fail at start, not at the first e-stop
        self.filter = SafetyFilter(cfg, start_t=self._now(), estop_engaged=saved.engaged)
        self.log = InterventionLog()
        self.faults = node_fault_log(self, 'input refused')
        self.downsample = DownsampleReport()
        self.arbiter = ActionArbiter(ArbiterConfig(
            takeover_hold_s=declare(self, 'takeover_hold_s', ArbiterConfig().takeover_hold_s,
                                    "Control returns to the policy this long after the operator's last action.")),
            mode=declare(self, 'control_mode', 'auto', "'auto' (operator takes over while teleop sends), "
                                                       "'policy' or 'teleop'; also settable on control/mode."))
        self._source = 'policy'                                # of the newest action
        self._slot_timer = None
        self._state = ''

        self.twist_pub = self.create_publisher(TwistStamped, c.EE_TWIST_CMD.name, profile(c.EE_TWIST_CMD))
        self.gripper_pub = self.create_publisher(Float32, c.SAFE_GRIPPER_ACTION.name, profile(c.SAFE_GRIPPER_ACTION))
        self.status_pub = self.create_publisher(String, c.SAFETY_STATUS.name, profile(c.SAFETY_STATUS))
        self.applied_pub = self.create_publisher(JointState, c.APPLIED_ACTION.name, profile(c.APPLIED_ACTION))
        self.create_subscription(Float32MultiArray, c.POLICY_ACTION.name,
                                 lambda msg: self._on_action(msg, 'policy'), profile(c.POLICY_ACTION))
        self.create_subscription(Float32MultiArray, c.TELEOP_ACTION.name,
                                 lambda msg: self._on_action(msg, 'teleop'), profile(c.TELEOP_ACTION))
        self.create_subscription(String, c.CONTROL_MODE.name, self._on_mode, profile(c.CONTROL_MODE))
        self.create_subscription(Image, c.CAMERA_IMAGE.name, self._on_image, profile(c.CAMERA_IMAGE))
        self.create_subscription(PoseStamped, c.EE_POSE.name, self._on_pose, profile(c.EE_POSE))
        self.create_subscription(Bool, c.ESTOP.name, self._on_estop, profile(c.ESTOP))
        self.create_timer(1.0 / watchdog_hz, self._on_watchdog)
        self.create_timer(1.0, self._publish_status)
        self.get_logger().info(f'safety layer up: {cfg}')
        if saved.engaged:
            self.get_logger().warning(f'E-STOP ENGAGED (restored: {saved.detail}); publish False on estop to release')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg: Image) -> None:
        """Only a frame that passes the image checks keeps the camera alive for the watchdog."""
        try:
            image = image_array(msg)
            if min(image.shape[:2]) < self.min_image_side:
                raise ImageRejected('too_small', f'{image.shape[1]}x{image.shape[0]} is smaller than '
                                                 f'{self.min_image_side} pixels on a side')
        except ImageRejected as e:
            self.faults.fault(c.CAMERA_IMAGE.name, e.code, f'camera frame does not count as live: {e}')
            return
        self.filter.on_image(self._now())

    def _on_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.frame_id:
            self.faults.fault(c.EE_POSE.name, 'frame', f"EE pose in frame '{msg.header.frame_id}', expected "
                                                     f"'{self.frame_id}': ignored")
            return
        stamp = to_sec(msg.header.stamp)
        self.filter.on_ee_pose(self._now(), pose_arrays(msg)[0], measured_t=stamp if stamp > 0 else None)

    def _on_action(self, msg: Float32MultiArray, source: str) -> None:
        t = self._now()
        if not self.arbiter.accept(source, t):
            return
        self.filter.on_action(t, action_array(msg))
        self._source = source
        self._poll()

    def _poll(self) -> None:
        """Publish what the filter says is due now, stamped with the time it decided at; if an action waits for
        its slot, wake up then."""
        now = self.get_clock().now()
        t = now.nanoseconds * 1e-9
        cmd = self.filter.poll(t)
        if cmd is not None:
            self._publish(cmd, now.to_msg(), t)
        if self.filter.pending and self._slot_timer is None:
            delay = max(self.filter.next_slot - t, 0.0) + SLOT_MARGIN_S
            self._slot_timer = self.create_timer(delay, self._on_slot)

    def _on_slot(self) -> None:
        self.destroy_timer(self._slot_timer)                   # one-shot
        self._slot_timer = None
        self._poll()

    def _on_mode(self, msg: String) -> None:
        try:
            self.arbiter.set_mode(msg.data)
        except ValueError as e:
            self.faults.fault(c.CONTROL_MODE.name, 'invalid', f'control/mode ignored: {e}')
            return
        self.get_logger().info(f'control mode: {msg.data}')

    def _on_estop(self, msg: Bool) -> None:
        change = self.filter.on_estop(msg.data, self._now())
        if msg.data:
            self._poll()                                       # stop first, then write it down
            self.get_logger().warning('E-STOP ENGAGED')
        elif change == 'ignored':
            self.get_logger().warning('e-stop release ignored: it came within startup_max_hold_s of a restart that '
                                      'restored the e-stop, so it may be older than the e-stop; publish False again')
        else:
            self.get_logger().info('e-stop released')
        if change in ('engaged', 'released'):
            self.estop_store.save(self.filter.estop_engaged)
            self._publish_status()

    def _on_watchdog(self) -> None:
        now = self._now()
        if self.filter.waiting_for_estop_state(now):      # a graph query: only while it can matter
            self.filter.on_estop_publishers(self.count_publishers(c.ESTOP.name))
        self._poll()
        for line in self.downsample.update(now, self.filter.dropped):
            self.get_logger().info(line)

    def _publish(self, cmd: Command, stamp: Time, t: float) -> None:
        self.twist_pub.publish(twist_msg(cmd.velocity, stamp, self.frame_id))
        if cmd.gripper is not None:
            self.gripper_pub.publish(Float32(data=cmd.gripper))
        if not cmd.stopped:
            cfg = self.filter.config
            self.applied_pub.publish(applied_action_msg(cmd.velocity / (cfg.action_scale_m * cfg.control_rate_hz),
                                                        cmd.gripper, self._source == 'teleop', stamp))
        self._report(cmd, t)

    def _report(self, cmd: Command, t: float) -> None:
        started, cleared = self.log.update(cmd, t)
        for reason in started:      # one call site per severity: rclpy refuses changing severities per line
            if reason.stops:
                self.get_logger().warning(f'safety intervention (STOP): {reason}')
            else:
                self.get_logger().info(f'safety intervention (limit): {reason}')
        for code in cleared:
            self.get_logger().info(f'safety: {code} cleared')
        if started or cleared or cmd.state != self._state:
            self._state = cmd.state
            self._publish_status()

    def health(self) -> Health:
        """The safety state for /diagnostics: ok is OK, limited a warning, stopped and e-stop errors."""
        state = self._state or 'starting'
        level = {'ok': 'ok', 'limited': 'warn', 'starting': 'warn'}.get(state, 'error')
        reasons = [str(r) for r in self.log.active]
        return Health(level, f'{state}: {"; ".join(reasons)}' if reasons else state,
                      {'estop': self.filter.estop_engaged, 'control_mode': self.arbiter.mode,
                       'interventions': self.log.count, 'last_reason': str(self.log.last or ''),
                       'dropped_actions': self.filter.dropped})

    def _publish_status(self) -> None:
        last = self.log.last
        self.status_pub.publish(String(data=json.dumps({
            'state': self._state or 'starting',
            'reasons': [str(r) for r in self.log.active],
            'interventions': self.log.count,
            'last_reason': str(last) if last else '',
            'estop': self.filter.estop_engaged,
            'control_mode': self.arbiter.mode,
            'operator': self.arbiter.operator_engaged(self._now()),
            'dropped_actions': self.filter.dropped})))

    def on_shutdown(self) -> None:
        """Leave the arm commanded to zero velocity."""
        self.twist_pub.publish(twist_msg(np.zeros(3), self.get_clock().now().to_msg(), self.frame_id))
        self.get_logger().info('shutting down: commanded zero velocity')
        self.twist_pub.wait_for_all_acked(timeout=Duration(seconds=0.5))


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
