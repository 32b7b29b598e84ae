"""Camera stamp -> robot/ee_twist_cmd latency over real ROS 2 topics, at a fixed camera/control rate.

Chain: image (stamped at capture) -> policy node (onnxruntime) -> policy/action -> safety node ->
robot/ee_twist_cmd, arriving at this benchmark's subscriber. Latency = arrival time - image stamp.

  in one process:   the image publisher, policy and safety nodes share one executor
  across processes: the real camera node (reading a generated video file), policy and safety each in
                    their own process, as `lamp-ros deploy` runs them

Baseline rows, measured in the same run: the transport alone, one image hop from publisher to
subscriber (in one process; and camera node process -> this process).

  .venv/bin/python bench/camera_to_command.py [--rate 20] [--seconds 15] [--image-size 64]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402

from lamp_ros import contract as c  # noqa: E402
from lamp_ros.graph import NODES, NodeLaunch  # noqa: E402
from lamp_ros.paths import config_file  # noqa: E402
from lamp_ros.ros.convert import gripper_state_msg, image_msg, pose_msg, to_sec  # noqa: E402
from lamp_ros.ros.interfaces import message_class, profile  # noqa: E402
from lamp_ros.runner import node_command  # noqa: E402

WARMUP_S = 2.5          # the safety layer holds still for its first second; let everything settle


class LatencyProbe(Node):
    """Plays the arm driver (EE pose, gripper state) and, optionally, the camera; records latencies."""

    def __init__(self, name: str, rate_hz: float, image_size: int, publish_images: bool) -> None:
        super().__init__(name)
        self.image = np.random.default_rng(0).integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        self.image_pub = self.create_publisher(message_class(c.CAMERA_IMAGE), c.CAMERA_IMAGE.name,
                                               profile(c.CAMERA_IMAGE))
        self.pose_pub = self.create_publisher(message_class(c.EE_POSE), c.EE_POSE.name, profile(c.EE_POSE))
        self.grip_pub = self.create_publisher(message_class(c.GRIPPER_STATE), c.GRIPPER_STATE.name,
                                              profile(c.GRIPPER_STATE))
        self.create_subscription(message_class(c.CAMERA_IMAGE), c.CAMERA_IMAGE.name, self._on_image,
                                 profile(c.CAMERA_IMAGE))
        self.create_subscription(message_class(c.EE_TWIST_CMD), c.EE_TWIST_CMD.name, self._on_twist,
                                 profile(c.EE_TWIST_CMD))
        self.publish_images = publish_images
        self.start = time.monotonic()
        self.last_stamp: float | None = None      # stamp of the newest image not yet answered by a command
        self.hop_ms: list[float] = []             # image transport alone
        self.chain_ms: list[float] = []           # image stamp -> twist arrival
        self.create_timer(1.0 / rate_hz, self._tick)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _warm(self) -> bool:
        return time.monotonic() - self.start > WARMUP_S

    def _tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self.pose_pub.publish(pose_msg(np.array([0.5, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), stamp, 'base'))
        self.grip_pub.publish(gripper_state_msg(1.0, stamp))
        if self.publish_images:
            self.image_pub.publish(image_msg(self.image, self.get_clock().now().to_msg(), 'camera_front'))

    def _on_image(self, msg) -> None:
        now, stamp = self._now(), to_sec(msg.header.stamp)
        if self._warm():
            self.hop_ms.append((now - stamp) * 1e3)
        self.last_stamp = stamp

    def _on_twist(self, msg) -> None:
        now = self._now()
        if self.last_stamp is not None and self._warm():
            self.chain_ms.append((now - self.last_stamp) * 1e3)
        self.last_stamp = None


def params_file(tmp: Path, bundle: Path, rate_hz: float) -> Path:
    path = tmp / 'bench_params.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'control_rate_hz': rate_hz, 'bundle_path': str(bundle), 'instruction': 'push the button',
        'workspace_min': [0.0, -1.0, 0.0], 'workspace_max': [1.0, 1.0, 1.0]}}}))
    return path


def spin(executor: SingleThreadedExecutor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.01)


def run_in_process(bundle: Path, tmp: Path, rate_hz: float, seconds: float, image_size: int) -> LatencyProbe:
    from lamp_ros.nodes.policy import PolicyNode
    from lamp_ros.nodes.prompt import PromptNode
    from lamp_ros.nodes.safety import SafetyNode
    files = [config_file('common.yaml'), config_file('policy.yaml'), config_file('safety.yaml'),
             params_file(tmp, bundle, rate_hz)]
    args = ['bench', '--ros-args'] + [a for f in files for a in ('--params-file', str(f))]
    rclpy.init(args=args)
    try:
        executor = SingleThreadedExecutor()
        probe = LatencyProbe('bench_inproc', rate_hz, image_size, publish_images=True)
        nodes = [PromptNode(), PolicyNode(), SafetyNode(), probe]
        for n in nodes:
            executor.add_node(n)
        spin(executor, WARMUP_S + seconds)
        for n in nodes:
            n.destroy_node()
        return probe
    finally:
        rclpy.shutdown()


def run_across_processes(bundle: Path, tmp: Path, rate_hz: float, seconds: float, image_size: int) -> LatencyProbe:
    video = tmp / 'camera.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), rate_hz, (image_size, image_size))
    rng = np.random.default_rng(1)
    for _ in range(60):
        writer.write(rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8))
    writer.release()
    extra = params_file(tmp, bundle, rate_hz)
    camera = tmp / 'camera_params.yaml'
    camera.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'source': str(video), 'width': image_size, 'height': image_size, 'rate_hz': rate_hz}}}))
    procs = []
    for name, override in (('prompt', extra), ('policy', extra), ('safety', extra), ('camera', camera)):
        spec = next(s for s in NODES if s.name == name)
        launch = NodeLaunch(spec, (config_file('common.yaml'), config_file(f'{name}.yaml')))
        procs.append(subprocess.Popen(node_command(launch, override), stdout=subprocess.DEVNULL,
                                      stderr=open(tmp / f'{name}.log', 'w')))
    rclpy.init()
    try:
        executor = SingleThreadedExecutor()
        probe = LatencyProbe('bench_procs', rate_hz, image_size, publish_images=False)
        executor.add_node(probe)
        spin(executor, 3.0)                      # processes start (imports, bundle load)
        probe.start, probe.hop_ms, probe.chain_ms = time.monotonic(), [], []
        spin(executor, WARMUP_S + seconds)
        probe.destroy_node()
        return probe
    finally:
        rclpy.shutdown()
        for p in procs:
            p.send_signal(2)
        for p in procs:
            p.wait(timeout=10)


def row(label: str, ms: list[float], baseline: list[float] | None) -> str:
    if not ms:
        return f'{label:<44} {"no samples":>10}'
    a = np.asarray(ms)
    med, p99 = np.median(a), np.percentile(a, 99)
    ratio = ''
    if baseline:
        ratio = f'{med / np.median(baseline):>8.1f}x {p99 / np.percentile(baseline, 99):>8.1f}x'
    return f'{label:<44} {len(a):>6} {med:>9.2f} {p99:>9.2f} {a.max():>9.2f}   {ratio}'


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rate', type=float, default=20.0, help='camera and control rate, Hz (default 20)')
    p.add_argument('--seconds', type=float, default=15.0, help='measured seconds per setup (default 15)')
    p.add_argument('--image-size', type=int, default=64, help='square image size (default 64)')
    p.add_argument('--bundle', type=Path, help='policy bundle to use (default: a random-weight one, made here)')
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='lamp_bench_') as tmp_name:
        tmp = Path(tmp_name)
        bundle = args.bundle
        if bundle is None:
            from training.export import export_random_bundle
            bundle = tmp / 'bundle'
            export_random_bundle(bundle, image_size=args.image_size, text_layers=1, control_rate_hz=args.rate)
        inproc = run_in_process(bundle, tmp, args.rate, args.seconds, args.image_size)
        procs = run_across_processes(bundle, tmp, args.rate, args.seconds, args.image_size)
    print(f'\ncamera stamp -> robot/ee_twist_cmd at {args.rate:g} Hz, {args.image_size}x{args.image_size} rgb8, '
          f'{args.seconds:g} s each ({os.cpu_count()} CPUs)')
    print(f'{"":<44} {"n":>6} {"median":>9} {"p99":>9} {"max":>9}   {"median/base":>9} {"p99/base":>9}')
    print(f'{"(milliseconds)":<44}')
    print(row('transport alone, one process (baseline)', inproc.hop_ms, None))
    print(row('camera -> command, one process', inproc.chain_ms, inproc.hop_ms))
    print(row('transport alone, camera process (baseline)', procs.hop_ms, None))
    print(row('camera -> command, across processes', procs.chain_ms, procs.hop_ms))
    return 0


if __name__ == '__main__':
    sys.exit(main())
