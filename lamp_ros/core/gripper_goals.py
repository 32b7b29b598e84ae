"""When to send a gripper action goal (control_msgs GripperCommand, ParallelGripperCommand), ROS-free.

The gripper node's command (0 closed / 1 open, core/gripper.py) becomes a goal position (`open_position` /
`closed_position`, in the gripper's units: metres of opening for most parallel grippers) with `max_effort`. A goal
goes out when the command changes, and again when the last one failed (rejected, aborted, or not answered within
`goal_timeout_s`), at most once per `retry_s`: the arm waits no longer than that for a lost goal, and a server
that is down is asked at a slow, fixed rate instead of a flood."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GripperGoalConfig:
    open_position: float = 0.085          # e.g. Robotiq 2F-85: 85 mm opening
    closed_position: float = 0.0
    max_effort: float = 20.0              # N (0: the controller's default)
    goal_timeout_s: float = 5.0
    retry_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_effort < 0 or self.goal_timeout_s <= 0 or self.retry_s <= 0:
            raise ValueError(f'max_effort must be >= 0, goal_timeout_s and retry_s > 0: {self}')
        if self.open_position == self.closed_position:
            raise ValueError(f'open_position and closed_position are both {self.open_position}')


class GoalTracker:
    def __init__(self, config: GripperGoalConfig) -> None:
        self.config = config
        self.sent_command: float | None = None    # the command of the goal in flight or done
        self.sent_t = float('-inf')
        self.outcome = ''                          # '' in flight, 'done', or why it failed

    def position(self, command: float) -> float:
        return self.config.open_position if command >= 0.5 else self.config.closed_position

    def due(self, command: float | None, t: float) -> bool:
        """Whether a goal for `command` should go out now."""
        if command is None:
            return False
        if command != self.sent_command:
            return True
        if self.outcome == '' and t - self.sent_t > self.config.goal_timeout_s:
            self.outcome = f'no result within {self.config.goal_timeout_s:g} s'
        failed = self.outcome not in ('', 'done')
        return failed and t - self.sent_t >= self.config.retry_s

    def sent(self, command: float, t: float) -> None:
        self.sent_command, self.sent_t, self.outcome = command, t, ''

    def finished(self, command: float, ok: bool, why: str = '') -> None:
        """The result of the goal for `command` (an older goal's result is ignored)."""
        if command == self.sent_command:
            self.outcome = 'done' if ok else (why or 'failed')
