"""Reward node under a 30 Hz camera: achieved reward rate and image-stamp -> reward latency over real topics.

The reward node runs as its own process (as `lamp-ros` runs it) with R3M ResNet-50 in ONNX (random weights:
speed does not depend on them; the text encoder is a small random DistilBERT, used once per instruction), frames
128x128. This process plays the camera (a timer at --camera-hz, each image stamped when published) and records
every reward: latency = arrival time - the stamp of the image it scored (the node copies that stamp).

Baseline, measured in the same run in this process: the model's own work per reward (embed one frame +
score it, OnnxR3MReward with the same thread count), so "ratio" is what transport and scheduling add.

  .venv/bin/python bench/reward_node.py [--seconds 20] [--rates 10 30] [--threads 1 2]
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from lamp_ros import contract as c  # noqa: E402
from lamp_ros.graph import ROBOTS, NodeLaunch, NodeSpec  # noqa: E402
from lamp_ros.paths import config_file  # noqa: E402
from lamp_ros.ros.convert import image_msg, to_sec  # noqa: E402
from lamp_ros.ros.interfaces import message_class, profile  # noqa: E402
from lamp_ros.runner import node_command  # noqa: E402

IMAGE = 128
WARMUP_S = 2.0          # after the first reward: model warm, discovery settled
SPEC = NodeSpec('reward', 'reward', ROBOTS, 0, 'camera + instruction -> reward')


class CameraProbe(Node):
    def __init__(self, camera_hz: float) -> None:
        super().__init__('reward_bench')
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 255, (IMAGE, IMAGE, 3), dtype=np.uint8) for _ in range(8)]
        self.image_pub = self.create_publisher(message_class(c.CAMERA_IMAGE), c.CAMERA_IMAGE.name,
                                               profile(c.CAMERA_IMAGE))
        self.instruction_pub = self.create_publisher(String, c.INSTRUCTION.name, profile(c.INSTRUCTION))
        self.create_subscription(message_class(c.REWARD), c.REWARD.name, self._on_reward, profile(c.REWARD))
        self.sent = 0
        self.arrivals: list[tuple[float, float]] = []      # (monotonic arrival, stamp -> arrival latency s)
        self.create_timer(1.0 / camera_hz, self._tick)

    def _tick(self) -> None:
        image = self.images[self.sent % len(self.images)]
        self.image_pub.publish(image_msg(image, self.get_clock().now().to_msg(), 'camera_front'))
        self.sent += 1

    def _on_reward(self, msg) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        self.arrivals.append((time.monotonic(), now - to_sec(msg.header.stamp)))


def export_resnet50(out: Path) -> Path:
    from models.r3m.model import R3MNet
    from models.r3m.onnx_export import export_onnx
    from models.r3m.reward import R3MReward
    from models.text_encoder import SentenceEncoder, default_vocab_path

    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=30522)
    reward = R3MReward(R3MNet.random(size=50, hidden_dim=1024, lang_enc=text), default_vocab_path(),
                       name='r3m-resnet50-random')
    export_onnx(reward, out, verify_sizes=(IMAGE,))
    return out


def compute_baseline(export: Path, threads: int, seconds: float) -> list[float]:
    """The model's work per reward in this process: embed one frame, score it (ms)."""
    from models.r3m.runtime import OnnxR3MReward
    model = OnnxR3MReward.load(export, threads=threads)
    frame = np.random.default_rng(1).integers(0, 255, (1, IMAGE, IMAGE, 3), dtype=np.uint8)
    first, lang = model.embed_images(frame), model.embed_instructions(['push the button'])
    times = []
    for _ in range(3):
        model.score(first, model.embed_images(frame), lang)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t0 = time.perf_counter()
        model.score(first, model.embed_images(frame), lang)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def run_node_case(export: Path, rate_hz: float, threads: int, camera_hz: float, seconds: float,
                  work: Path) -> dict:
    overrides = work / f'reward_{rate_hz:g}_{threads}.yaml'
    overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'checkpoint': str(export), 'rate_hz': float(rate_hz), 'threads': threads, 'image_size': IMAGE}}}))
    cmd = node_command(NodeLaunch(SPEC, (config_file('common.yaml'), config_file('reward.yaml'))), overrides)
    log = work / f'reward_{rate_hz:g}_{threads}.log'
    proc = subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    probe = CameraProbe(camera_hz)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    try:
        probe.instruction_pub.publish(String(data='push the button'))
        deadline = time.monotonic() + 60
        while not probe.arrivals and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        if not probe.arrivals:
            raise RuntimeError(f'no reward within 60 s; node log:\n{log.read_text()}')
        warm_until = time.monotonic() + WARMUP_S
        while time.monotonic() < warm_until:
            executor.spin_once(timeout_sec=0.01)
        start, sent0, n0 = time.monotonic(), probe.sent, len(probe.arrivals)
        while time.monotonic() < start + seconds:
            executor.spin_once(timeout_sec=0.01)
        elapsed = time.monotonic() - start
        latencies = np.array([lat for _, lat in probe.arrivals[n0:]]) * 1e3
        return {'rate_hz': rate_hz, 'threads': threads, 'camera_hz': (probe.sent - sent0) / elapsed,
                'reward_hz': len(latencies) / elapsed, 'median_ms': float(np.median(latencies)),
                'p99_ms': float(np.percentile(latencies, 99)), 'max_ms': float(latencies.max())}
    finally:
        executor.remove_node(probe)
        probe.destroy_node()
        proc.send_signal(2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='measured time per case, s (default 20)')
    parser.add_argument('--rates', type=float, nargs='+', default=[10.0, 30.0],
                        help='node rate_hz values (default 10 30)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2], help='node threads values (default 1 2)')
    parser.add_argument('--camera-hz', type=float, default=30.0, help='camera rate (default 30)')
    args = parser.parse_args()

    rclpy.init()
    rows, baselines = [], {}
    with tempfile.TemporaryDirectory(prefix='reward_node_bench_') as tmp:
        work = Path(tmp)
        print('exporting R3M ResNet-50 (random weights) to ONNX ...', file=sys.stderr, flush=True)
        export = export_resnet50(work / 'resnet50_onnx')
        for threads in args.threads:
            baselines[threads] = compute_baseline(export, threads, seconds=5.0)
            for rate in args.rates:
                print(f'reward node rate_hz {rate:g}, threads {threads}, camera {args.camera_hz:g} Hz ...',
                      file=sys.stderr, flush=True)
                rows.append(run_node_case(export, rate, threads, args.camera_hz, args.seconds, work))
    rclpy.shutdown()

    load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    print(f'\nreward node, R3M ResNet-50 ONNX, {IMAGE}x{IMAGE} rgb8 frames, camera {args.camera_hz:g} Hz, '
          f'{args.seconds:g} s per row; load average at the end {load}')
    print('baseline = embed one frame + score it in this process (OnnxR3MReward, same threads), same run')
    header = (f'{"rate_hz":>7} {"threads":>7} | {"camera Hz":>9} {"rewards/s":>9} | {"latency med":>11} '
              f'{"p99":>8} {"max":>8} | {"baseline med":>12} {"p99":>8} | {"ratio med":>9}')
    print(header)
    print('-' * len(header))
    for r in rows:
        base = baselines[r['threads']]
        b_med, b_p99 = float(np.median(base)), float(np.percentile(base, 99))
        print(f'{r["rate_hz"]:7g} {r["threads"]:7d} | {r["camera_hz"]:9.1f} {r["reward_hz"]:9.1f} | '
              f'{r["median_ms"]:9.1f}ms {r["p99_ms"]:6.1f}ms {r["max_ms"]:6.1f}ms | {b_med:10.1f}ms {b_p99:6.1f}ms | '
              f'{r["median_ms"] / b_med:8.2f}x')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
