"""Test-side ROS plumbing: a probe node that publishes and records contract topics over real DDS, and
a helper that runs real lamp_ros node processes with parameters, the way the runner does."""
from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor

from lamp_ros.contract import Topic
from lamp_ros.graph import NodeLaunch, NODES
from lamp_ros.paths import config_file
from lamp_ros.ros.interfaces import message_class, profile
from lamp_ros.runner import node_command


class Probe:
    def __init__(self, name: str = 'test_probe') -> None:
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self._pubs = {}

    def record(self, topic: Topic) -> list[tuple[float, Any]]:
        """Start recording (monotonic arrival time, message) for a topic; returns the live list."""
        log = self.received[topic.name]
        self.node.create_subscription(message_class(topic), topic.name,
                                      lambda msg: log.append((time.monotonic(), msg)), profile(topic))
        return log

    def publish(self, topic: Topic, msg: Any) -> None:
        if topic.name not in self._pubs:
            self._pubs[topic.name] = self.node.create_publisher(message_class(topic), topic.name, profile(topic))
        self._pubs[topic.name].publish(msg)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, step: Callable[[], None] | None = None) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if step is not None:
                step()
            self.executor.spin_once(timeout_sec=0.01)
            if predicate():
                return True
        return predicate()

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f'service {name} not available'
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f'service {name} did not answer in {timeout} s'
        return future.result()

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()


class NodeProcesses:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, executable: str, params: dict[str, Any] | None = None, name: str | None = None) -> subprocess.Popen:
        spec = next(s for s in NODES if s.executable == executable)
        name = name or spec.name
        files = (config_file('common.yaml'), config_file(f'{spec.name}.yaml'))
        overrides = None
        if params:
            overrides = self.tmp / f'{name}_params.yaml'
            overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
        cmd = node_command(NodeLaunch(spec, files), overrides)
        cmd[cmd.index(f'__node:={spec.name}')] = f'__node:={name}'
        log = self.tmp / f'{name}.log'
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
        return self.procs[name]

    def log(self, name: str) -> str:
        return self.logs[name].read_text()

    def stop(self, name: str, timeout: float = 10.0) -> int:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
