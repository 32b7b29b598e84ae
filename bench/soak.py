"""Soak: the deploy graph (sim arm, shipped bundle, policy acting all the time) for N minutes under load.

Prints what an operator feels on a long run: spurious safety stops (stale-input stops while every input is
alive), missed control ticks and the worst gap between commands on robot/ee_twist_cmd, and the resident
memory of every node at the start (after a warm-up) and the end.

  .venv/bin/python bench/soak.py [--minutes 10] [--load 4] [--source DIR]

--load N runs N busy processes beside the graph (load N on this machine's cores). --source DIR first runs
the same soak with the code of another checkout (e.g. `git archive <commit> | tar -x -C DIR`, the code
before a change): a baseline in the same conditions; ratios are printed against it.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('MUJOCO_GL', 'egl')

import numpy as np  # noqa: E402

from lamp_ros import contract as c  # noqa: E402

WARMUP_S = 30.0
STARTED = re.compile(r'\[lamp-ros\] started (\w+) \(pid (\d+)\)')
STALE_STOP = re.compile(r'safety intervention \(STOP\): (stale_\w+|no_\w+)')


@dataclass
class Result:
    label: str
    seconds: float
    commands: int
    missed: int
    worst_gap_s: float
    p99_gap_s: float
    stops: dict[str, int]
    rss_mb: dict[str, tuple[float, float]]

    @property
    def missed_share(self) -> float:
        return self.missed / max(self.commands + self.missed, 1)

    @property
    def stop_count(self) -> int:
        return sum(self.stops.values())


def rss_mb(pid: int) -> float:
    try:
        text = Path(f'/proc/{pid}/status').read_text()
    except FileNotFoundError:
        return float('nan')
    return next(int(line.split()[1]) / 1024 for line in text.splitlines() if line.startswith('VmRSS:'))


def busy_processes(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(n)]


def run_soak(label: str, source: Path, seconds: float, load: int, tmp: Path) -> Result:
    import rclpy
    from geometry_msgs.msg import TwistStamped

    from lamp_ros.ros.interfaces import profile
    log_path = tmp / f'{label}.log'
    env = {**os.environ, 'PYTHONPATH': str(source)}
    graph = subprocess.Popen([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--instruction', 'push button',
                              '--bundle', str(REPO / 'bundles' / 'default'),      # one bundle for both runs
                              '--duration', str(seconds + WARMUP_S + 10)], cwd=source, env=env,
                             stdout=open(log_path, 'w'), stderr=subprocess.STDOUT)
    busy = busy_processes(load)
    rclpy.init()
    node = rclpy.create_node('soak_probe')
    arrivals: list[float] = []
    node.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, lambda _: arrivals.append(time.monotonic()),
                             profile(c.EE_TWIST_CMD))
    try:
        end_warmup = time.monotonic() + WARMUP_S
        while time.monotonic() < end_warmup:
            rclpy.spin_once(node, timeout_sec=0.1)
        pids = {name: int(pid) for name, pid in STARTED.findall(log_path.read_text())}
        rss_start = {name: rss_mb(pid) for name, pid in pids.items()}
        log_start = len(log_path.read_text())
        start = time.monotonic()
        first = len(arrivals)
        while time.monotonic() < start + seconds:
            rclpy.spin_once(node, timeout_sec=0.1)
        rss = {name: (rss_start[name], rss_mb(pid)) for name, pid in pids.items()}
        stops: dict[str, int] = {}
        for code in STALE_STOP.findall(log_path.read_text()[log_start:]):
            stops[code] = stops.get(code, 0) + 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for p in busy:
            p.kill()
        graph.terminate()
        graph.wait(timeout=60)
    gaps = np.diff(np.array(arrivals[first:]))
    period = 1.0 / c.DEFAULT_CONTROL_RATE_HZ
    missed = int(sum(round(g / period) - 1 for g in gaps if g > 1.5 * period))
    return Result(label, seconds, len(gaps), missed, float(gaps.max()), float(np.percentile(gaps, 99)), stops, rss)


def report(r: Result) -> None:
    print(f'\n== {r.label}: {r.seconds / 60:.1f} min')
    print(f'commands {r.commands}, missed ticks {r.missed} ({100 * r.missed_share:.2f}%), '
          f'gap p99 {1e3 * r.p99_gap_s:.0f} ms, worst {1e3 * r.worst_gap_s:.0f} ms')
    print(f'spurious stops {r.stop_count} ({100 * r.stop_count / max(r.commands, 1):.2f}% of commands): '
          + (', '.join(f'{k} {v}' for k, v in sorted(r.stops.items())) or 'none'))
    print('RSS MB (start -> end, drift): ' + ', '.join(
        f'{name} {a:.0f}->{b:.0f} ({b - a:+.1f})' for name, (a, b) in sorted(r.rss_mb.items())))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--minutes', type=float, default=10.0)
    p.add_argument('--load', type=int, default=4, help='busy processes beside the graph (default 4)')
    p.add_argument('--source', type=Path, default=None, help='a checkout to soak first, as the baseline')
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix='soak_') as tmp:
        runs = ([('baseline', args.source)] if args.source else []) + [('this checkout', REPO)]
        for label, source in runs:
            results.append(run_soak(label, source.resolve(), 60 * args.minutes, args.load, Path(tmp)))
            report(results[-1])
    if len(results) == 2:
        base, new = results
        print(f'\nratios (this / baseline): spurious stops {new.stop_count}/{base.stop_count}, missed ticks '
              f'{new.missed_share / max(base.missed_share, 1e-9):.2f}, worst gap {new.worst_gap_s / base.worst_gap_s:.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
