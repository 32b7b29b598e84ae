"""What the MoveIt Servo adapter asks of servo_node, and when (ROS-free; lamp_ros/nodes/servo_adapter.py makes the
calls). MoveIt Servo (the 2.x servo_node of Jazzy, Kilted and later) moves the arm only after `~/switch_command_type`
has selected the command type whose topic is used (TWIST for `~/delta_twist_cmds`), and `~/pause_servo`
(std_srvs/SetBool) pauses it. The session keeps servo paused while the e-stop is on, selects TWIST whenever it is
not known to be selected (at start, after a resume), and forwards twists only when both hold. One call at a time;
a refused or failed call is retried after `retry_s`, and its message kept as the reason."""
from __future__ import annotations

from dataclasses import dataclass

# moveit_msgs/srv/ServoCommandType request constants, and moveit_msgs/msg/ServoStatus codes
COMMAND_TYPE_TWIST = 1
SERVO_STATUS = {-1: 'INVALID', 0: 'NO_WARNING', 1: 'DECELERATE_FOR_APPROACHING_SINGULARITY',
                2: 'HALT_FOR_SINGULARITY', 3: 'DECELERATE_FOR_COLLISION', 4: 'HALT_FOR_COLLISION', 5: 'JOINT_BOUND',
                6: 'DECELERATE_FOR_LEAVING_SINGULARITY'}
SERVO_HALTS = (2, 4, 5)          # servo stops the arm itself: the policy's twist is not followed


@dataclass(frozen=True)
class ServoCall:
    service: str                 # 'switch_command_type' or 'pause_servo'
    value: int | bool            # the command type, or pause (True) / resume (False)


class ServoSession:
    def __init__(self, retry_s: float = 1.0) -> None:
        self.retry_s = retry_s
        self.estop = False
        self.paused = False                  # servo_node starts unpaused
        self.twist_selected = False
        self.pending: ServoCall | None = None
        self.reason = 'selecting the twist command type'
        self._retry_at = 0.0

    @property
    def forwarding(self) -> bool:
        """Twists reach servo only in twist mode, unpaused, with no e-stop."""
        return self.twist_selected and not self.paused and not self.estop and self.pending is None

    def next_call(self, now: float) -> ServoCall | None:
        """The call to make now (then `sent`), or None: one in flight, waiting to retry, or nothing to do."""
        if self.pending is not None or now < self._retry_at:
            return None
        if self.estop != self.paused:
            return ServoCall('pause_servo', self.estop)
        if not self.estop and not self.twist_selected:
            return ServoCall('switch_command_type', COMMAND_TYPE_TWIST)
        return None

    def sent(self, call: ServoCall) -> None:
        self.pending = call

    def answered(self, call: ServoCall, ok: bool, message: str, now: float) -> None:
        """servo_node's answer to `call` (ok False also for a call that could not be made)."""
        self.pending = None
        if not ok:
            self._retry_at = now + self.retry_s
            self.reason = f'{call.service} failed: {message}' if message else f'{call.service} failed'
            return
        if call.service == 'pause_servo':
            self.paused = bool(call.value)
            self.twist_selected = self.twist_selected and not self.paused     # selected again after a resume
            self.reason = 'paused (e-stop)' if self.paused else 'resumed'
        else:
            self.twist_selected = True
            self.reason = 'twist mode'

    def on_estop(self, engaged: bool) -> None:
        self.estop = engaged
