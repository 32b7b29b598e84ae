"""/diagnostics: every node's health as a diagnostic_msgs/DiagnosticStatus once a second, so rqt_robot_monitor,
Foxglove and `ros2 topic echo /diagnostics` show the graph's state beside the console's JSON status topics.

A node says how it is with a `health()` method returning Health (level, one-line message, key values such as
the safety reason or the bundle version); a node without one reports that it is running."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from lamp_ros import contract as c
from lamp_ros.ros.interfaces import profile

LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR,
          'stale': DiagnosticStatus.STALE}
HARDWARE_ID = 'lamp_ros'
MAX_TEXT = 200


@dataclass(frozen=True)
class Health:
    level: str = 'ok'                        # ok | warn | error | stale
    message: str = 'running'
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f'health level must be one of {list(LEVELS)}, got {self.level!r}')


def diagnostic_status(name: str, health: Health) -> DiagnosticStatus:
    return DiagnosticStatus(level=LEVELS[health.level], name=name, message=health.message[:MAX_TEXT],
                            hardware_id=HARDWARE_ID,
                            values=[KeyValue(key=str(k), value=str(v)[:MAX_TEXT]) for k, v in health.values.items()])


def attach_diagnostics(node: Node, period_s: float = 1.0) -> None:
    """Publish `node`'s health on /diagnostics every `period_s` (named lamp_ros/<node name>)."""
    publisher = node.create_publisher(DiagnosticArray, c.DIAGNOSTICS.name, profile(c.DIAGNOSTICS))
    name = f'{HARDWARE_ID}/{node.get_name()}'

    def report() -> None:
        health = node.health() if hasattr(node, 'health') else Health()
        msg = DiagnosticArray(status=[diagnostic_status(name, health)])
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)

    node.create_timer(period_s, report)
