"""Running one node as a process: parameter declaration with descriptions, and a spin loop with a
clean, ordered shutdown (the node gets to publish its last words, e.g. a zero-velocity command,
before the ROS context goes away)."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def declare(node: Node, name: str, default: Any, description: str, read_only: bool = False) -> Any:
    """Declare a described parameter and return its value (from YAML/CLI overrides or the default)."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                     read_only=read_only)).value


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Spin a node until SIGINT/SIGTERM, then call its `on_shutdown()` (if any) while ROS still works.

    rclpy's own signal handlers would shut the context down first, so the node could publish nothing
    more: we install ours instead (SignalHandlerOptions exists since Humble)."""
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
        return 0
    finally:
        if node is not None:
            on_shutdown = getattr(node, 'on_shutdown', None)
            if on_shutdown is not None and rclpy.ok():
                on_shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
