"""Running one node as a process: parameter declaration with descriptions, and a spin loop with a
clean, ordered shutdown (the node gets to publish its last words, e.g. a zero-velocity command,
before the ROS context goes away)."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from lamp_ros.ros.diagnostics import attach_diagnostics


class BadParameter(ValueError):
    """A parameter value the node cannot run with: the process exits (code 2) with this one line, no traceback."""


def declare(node: Node, name: str, default: Any, description: str, read_only: bool = False) -> Any:
    """Declare a described parameter and return its value (from YAML/CLI overrides or the default)."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                     read_only=read_only)).value


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Spin a node until SIGINT/SIGTERM, then call its `on_shutdown()` (if any) while ROS still works.

    rclpy's own signal handlers would shut the context down first, so the node could publish nothing
    more: we install ours instead (SignalHandlerOptions exists since Humble). A bad parameter (BadParameter, or
    rclpy's own, e.g. a value of the wrong type) ends the process with one line and exit code 2. Every node
    reports its health on /diagnostics (ros/diagnostics.py). The executor
    is shut down before the context (else its __del__ can raise InvalidHandle at exit)."""
    argv = sys.argv if args is None else args
    if _asks_for_help(argv):
        print(node_help(make_node))
        return 0
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    node, executor = None, None
    try:
        try:
            node = make_node()
        except (BadParameter, ParameterException) as e:
            print(f'[{getattr(make_node, "__name__", "node")}] bad parameter: {e}', file=sys.stderr)
            return 2
        attach_diagnostics(node)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
        return 0
    finally:
        _shut_down(node, executor)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _shut_down(node: Node | None, executor: SingleThreadedExecutor | None) -> None:
    """In order: the node's on_shutdown (ROS still up, so it can publish), the executor, the node, the context."""
    if node is not None:
        on_shutdown = getattr(node, 'on_shutdown', None)
        if on_shutdown is not None and rclpy.ok():
            on_shutdown()
    if executor is not None:
        executor.shutdown()
    if node is not None:
        node.destroy_node()
    rclpy.try_shutdown()


def _asks_for_help(argv: list[str]) -> bool:
    """-h/--help among the node's own arguments (those before --ros-args)."""
    own = argv[1:argv.index('--ros-args')] if '--ros-args' in argv else argv[1:]
    return '-h' in own or '--help' in own


def node_help(make_node: Callable[[], Node]) -> str:
    """What `ros2 run lamp_ros NODE --help` prints: the node module's description and where its parameters are
    (the node is not started: constructing one opens devices and topics)."""
    module = sys.modules.get(getattr(make_node, '__module__', ''), None)
    name = Path(module.__file__).stem if module and getattr(module, '__file__', None) else 'node'
    return (f'{(module.__doc__ or "").strip() if module else ""}\n\n'
            f'usage: ros2 run lamp_ros {name} [--ros-args -p NAME:=VALUE ... | --params-file FILE]\n'
            f'parameters: their defaults and descriptions are in config/{name}.yaml (installed under '
            f'share/lamp_ros/config); a running node lists them with `ros2 param describe /{name} NAME`.')
