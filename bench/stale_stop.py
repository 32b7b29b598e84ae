"""How fast a dead input stops the arm: the safety node fed camera, pose and action at 10 Hz (with jitter), then
the camera goes silent; the time from its last frame to the first zero twist, over N trials.

Two configurations of the same node in the same run: the stale limits derived from each input's measured
rate (the defaults) and, as the baseline, the fixed 1.5-period limit they replaced.

  .venv/bin/python bench/stale_stop.py [--trials 20] [--jitter 0.03]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from lamp_ros import contract as c  # noqa: E402
from lamp_ros.graph import NODES, NodeLaunch  # noqa: E402
from lamp_ros.paths import config_file  # noqa: E402
from lamp_ros.ros.convert import action_msg, image_msg, pose_msg, twist_linear  # noqa: E402
from lamp_ros.runner import node_command  # noqa: E402

BASELINE = {'stale_min_s': 0.15, 'stale_max_periods': 1.5}      # the fixed limit: 0.15 s whatever the input's rhythm


def start_safety(tmp: Path, params: dict) -> subprocess.Popen:
    spec = next(s for s in NODES if s.name == 'safety')
    overrides = tmp / 'safety_params.yaml'
    overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'startup_hold_s': 0.2, **params}}}))
    cmd = node_command(NodeLaunch(spec, (config_file('common.yaml'),)), overrides)
    return subprocess.Popen(cmd, stdout=open(tmp / 'safety.log', 'w'), stderr=subprocess.STDOUT)


class Feeder:
    """Camera, pose and action to the safety node at 10 Hz (+- jitter), until the camera is switched off."""

    def __init__(self, node, pubs: dict, jitter: float, rng) -> None:
        self.node, self.pubs, self.jitter, self.rng = node, pubs, jitter, rng
        self.image, self.position = np.zeros((32, 32, 3), np.uint8), np.array([0.45, 0.0, 0.15])
        self.camera_on, self.last_image, self.next_t = True, 0.0, time.monotonic()

    def tick(self) -> None:
        """Publish the inputs if they are due."""
        now = time.monotonic()
        if now < self.next_t:
            return
        self.next_t = now + 0.1 + self.rng.uniform(-self.jitter, self.jitter)
        stamp = self.node.get_clock().now().to_msg()
        if self.camera_on:
            self.pubs['image'].publish(image_msg(self.image, stamp, 'camera_front'))
            self.last_image = time.monotonic()
        self.pubs['pose'].publish(pose_msg(self.position, np.array([1.0, 0, 0, 0]), stamp, 'base'))
        self.pubs['action'].publish(action_msg(np.array([0.3, 0.0, 0.0, 1.0])))


def one_trial(node, feeder: Feeder, twists: list) -> float | None:
    """Feed until the arm moves, kill the camera, and return the time from its last frame to the first zero
    twist (None if the arm did not stop within the trial's 10 s)."""
    import rclpy
    feeder.camera_on, moving, deadline = True, False, time.monotonic() + 10.0
    while time.monotonic() < deadline:
        feeder.tick()
        rclpy.spin_once(node, timeout_sec=0.002)
        moving = moving or bool(twists and np.any(twist_linear(twists[-1][1])))
        if moving and feeder.camera_on and time.monotonic() > deadline - 7.0:
            feeder.camera_on, twists[:] = False, []                 # the camera dies
        if not feeder.camera_on and twists and not np.any(twist_linear(twists[-1][1])):
            return twists[-1][0] - feeder.last_image
    return None


def trials(node, pubs, twists: list, n: int, jitter: float, rng) -> list[float]:
    import rclpy
    feeder, latencies = Feeder(node, pubs, jitter, rng), []
    for _ in range(n):
        latency = one_trial(node, feeder, twists)
        if latency is not None:
            latencies.append(latency)
        while time.monotonic() < feeder.next_t + 0.5:               # recover before the next trial
            rclpy.spin_once(node, timeout_sec=0.01)
    return latencies


def measure(label: str, params: dict, n: int, jitter: float) -> np.ndarray:
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray

    from lamp_ros.ros.interfaces import profile
    with tempfile.TemporaryDirectory(prefix='stale_stop_') as tmp:
        proc = start_safety(Path(tmp), params)
        rclpy.init()
        node = rclpy.create_node('stale_stop_bench')
        pubs = {'image': node.create_publisher(Image, c.CAMERA_IMAGE.name, profile(c.CAMERA_IMAGE)),
                'pose': node.create_publisher(PoseStamped, c.EE_POSE.name, profile(c.EE_POSE)),
                'action': node.create_publisher(Float32MultiArray, c.POLICY_ACTION.name, profile(c.POLICY_ACTION))}
        twists: list = []
        node.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, lambda m: twists.append((time.monotonic(), m)),
                                 profile(c.EE_TWIST_CMD))
        try:
            result = np.array(trials(node, pubs, twists, n, jitter, np.random.default_rng(0)))
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
            proc.terminate()
            proc.wait(timeout=30)
    print(f'{label}: {len(result)} trials, stop after the last frame: median {1e3 * np.median(result):.0f} ms, '
          f'p99 {1e3 * np.percentile(result, 99):.0f} ms, max {1e3 * result.max():.0f} ms')
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--trials', type=int, default=20)
    p.add_argument('--jitter', type=float, default=0.03, help='frame timing jitter, +- seconds (default 0.03)')
    args = p.parse_args()
    base = measure('fixed 1.5-period limit (baseline)', BASELINE, args.trials, args.jitter)
    new = measure('limits from measured rates', {}, args.trials, args.jitter)
    print(f'ratio of medians (measured / fixed): {np.median(new) / np.median(base):.2f}; '
          f'2 control periods = {2e3 / c.DEFAULT_CONTROL_RATE_HZ:.0f} ms')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
