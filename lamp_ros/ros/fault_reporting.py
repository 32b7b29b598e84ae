"""A node's fault log: one line when a kind of bad input starts, one when it clears, a count in between; and a
node's state changes, each logged once at its severity."""
from __future__ import annotations

from typing import Any

from rclpy.node import Node

from lamp_ros.core.fault_log import FaultLog

SWEEP_PERIOD_S = 1.0


class _NodeLogger:
    """The node's rclpy logger behind the logging-style calls FaultLog makes (format string and arguments)."""

    def __init__(self, node: Node) -> None:
        self._logger = node.get_logger()

    def warning(self, fmt: str, *args: Any) -> None:
        self._logger.warning(fmt % args)

    def info(self, fmt: str, *args: Any) -> None:
        self._logger.info(fmt % args)


def node_fault_log(node: Node, what: str, clear_after_s: float = 5.0) -> FaultLog:
    """A FaultLog writing to `node`'s log, swept on a timer of the node."""
    faults = FaultLog(_NodeLogger(node), what, clear_after_s)
    node.create_timer(SWEEP_PERIOD_S, faults.sweep)
    return faults


def log_state_change(node: Node, what: str, state: str, reason: str, errors: tuple[str, ...]) -> None:
    """'<what> <state>: <reason>' at error for the `errors` states, warning while waiting, info otherwise.
    One call site per severity: rclpy refuses to log from one line at changing severities."""
    line = f'{what} {state}: {reason}'
    if state in errors:
        node.get_logger().error(line)
    elif state == 'waiting':
        node.get_logger().warning(line)
    else:
        node.get_logger().info(line)
