"""Runs a lamp_ros.graph.Graph as child processes, the way `ros2 launch` would, for installs without the
launch package (pip). One process per node (rendering never stalls the policy; both cores are used).

Shutdown is ordered by NodeSpec.stop_rank: motion sources stop first, then the safety layer (which
commands zero velocity as it exits), then the gripper, and the arm driver (or sim) last. Children run
in their own session, so a terminal Ctrl-C reaches only this runner, which then stops them in order;
they also get SIGTERM if the runner dies.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from lamp_ros.graph import Graph, NodeLaunch

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def node_command(node: NodeLaunch, overrides_file: Path | None) -> list[str]:
    """The command line of one node: the same ROS arguments launch_ros would pass."""
    cmd = [sys.executable, '-m', f'lamp_ros.nodes.{node.spec.executable}', '--ros-args',
           '-r', f'__node:={node.spec.name}']
    for f in node.params_files:
        cmd += ['--params-file', str(f)]
    if overrides_file is not None:
        cmd += ['--params-file', str(overrides_file)]
    for src, dst in node.spec.remappings:
        cmd += ['-r', f'{src}:={dst}']
    return cmd


@dataclass
class _Child:
    node: NodeLaunch
    proc: subprocess.Popen


class GraphRunner:
    def __init__(self, graph: Graph, env: dict[str, str] | None = None, log=print) -> None:
        self.graph = graph
        self.env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
        self.env.setdefault('MUJOCO_GL', 'egl')
        self.log = log
        self.children: list[_Child] = []
        self._tmp = tempfile.TemporaryDirectory(prefix='lamp_ros_')
        self._stop = threading.Event()

    def start(self) -> None:
        for note in self.graph.notes:
            self.log(f'[lamp-ros] {note}')
        for node in self.graph.nodes:
            overrides = None
            if node.overrides:
                # a params file, not `-p k:=v`: values stay strings (an instruction "1" is no integer)
                overrides = Path(self._tmp.name) / f'{node.spec.name}_overrides.yaml'
                overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': dict(node.overrides)}}))
            proc = subprocess.Popen(node_command(node, overrides), env=self.env, start_new_session=True,
                                    preexec_fn=_die_with_parent)
            self.children.append(_Child(node, proc))
            self.log(f'[lamp-ros] started {node.spec.name} (pid {proc.pid}): {node.spec.doc}')

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self, duration_s: float | None = None) -> int:
        """Until stop is requested, the duration passes, or a node exits on its own (then everything stops).
        Returns 0, or 1 if a node died."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        status = 0
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            dead = [ch for ch in self.children if ch.proc.poll() is not None]
            if dead:
                for ch in dead:
                    self.log(f'[lamp-ros] node {ch.node.spec.name} exited with code {ch.proc.returncode}: '
                             'stopping the graph')
                status = 1
                break
            self._stop.wait(0.1)
        self.stop()
        return status

    def stop(self) -> None:
        """SIGINT to each stop rank in turn; a node still running after its spec's stop_timeout_s is killed."""
        for rank in sorted({ch.node.spec.stop_rank for ch in self.children}):
            group = [ch for ch in self.children if ch.node.spec.stop_rank == rank and ch.proc.poll() is None]
            for ch in group:
                ch.proc.send_signal(signal.SIGINT)
            for ch in group:
                try:
                    ch.proc.wait(timeout=ch.node.spec.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self.log(f'[lamp-ros] {ch.node.spec.name} did not stop in {ch.node.spec.stop_timeout_s} s: '
                             'killing it')
                    ch.proc.kill()
                    ch.proc.wait()
        self._tmp.cleanup()
