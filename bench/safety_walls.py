"""The safety layer's workspace and rate promises, measured.

  walls   real node processes (sim_arm: MuJoCo; safety) over real topics: full-speed actions into each wall
          of the table box (+x, -x, +y, -y, floor, a diagonal) at the control rate, a share of them late
          (--late), then silence; prints how far beyond the box the TCP ever went and where it came to rest
  flood   the safety node alone: +-1 actions alternating at 1 kHz for 5 s on policy/action; prints the rate of
          robot/ee_twist_cmd, sign flips, the largest acceleration between consecutive twists (per second)
          and how many log lines the node wrote
  model   the ROS-free filter in tests/safety_world.py (random bursts, holds, stalls): worst overshoot

  .venv/bin/python bench/safety_walls.py [walls|flood|model ...] [--late 0.3] [--source DIR] [--examples 500]

--source DIR runs the node processes from another checkout of lamp_ros (e.g. `git archive HEAD | tar -x -C
DIR`, the code before a change) for a baseline measured in the same conditions; both get the same box.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('MUJOCO_GL', 'egl')

import numpy as np  # noqa: E402

from lamp_ros import contract as c  # noqa: E402
from lamp_ros.core.safety import SafetyConfig  # noqa: E402
from lamp_ros.ros.convert import action_msg, pose_arrays, to_sec, twist_linear  # noqa: E402

BOX = {'workspace_min': list(SafetyConfig().workspace_min), 'workspace_max': list(SafetyConfig().workspace_max)}
WALLS = {'+x': (1, 0, 0), '-x': (-1, 0, 0), '+y': (0, 1, 0), '-y': (0, -1, 0), 'floor': (0, 0, -1),
         'diagonal': (1, 1, -1)}


def outside_mm(p: np.ndarray) -> float:
    lo, hi = np.array(BOX['workspace_min']), np.array(BOX['workspace_max'])
    return 1e3 * float(max(np.max(lo - p), np.max(p - hi), 0.0))


def drive_into(probe, poses, direction, late: float, rng, seconds: float = 3.0) -> tuple[float, float, np.ndarray]:
    """Full speed toward a wall at 10 Hz (a share `late` of the actions up to 0.2 s late), then nothing:
    (farthest outside while driving or settling, outside at rest, mm; position at rest)."""
    t0, next_t, action = time.monotonic(), time.monotonic(), np.array([*direction, 1.0], dtype=float)
    while time.monotonic() < t0 + seconds:
        if time.monotonic() >= next_t:
            probe.publish(c.POLICY_ACTION, action_msg(action))
            next_t += 0.1 + (rng.uniform(0, 0.2) if rng.random() < late else 0.0)
        probe.executor.spin_once(timeout_sec=0.005)
    probe.spin_for(1.5)                                           # stale -> stop; the arm settles
    seen = [pose_arrays(m)[0] for t, m in poses if t >= t0]
    return max(outside_mm(p) for p in seen), outside_mm(seen[-1]), seen[-1]


def walls(probe, nodes, late: float) -> None:
    from std_srvs.srv import Trigger
    nodes.start('sim_arm', {'image_size': [64, 64], 'randomize': False})
    nodes.start('safety', dict(BOX))
    poses = probe.record(c.EE_POSE)
    twists = probe.record(c.EE_TWIST_CMD)
    assert probe.wait_for(lambda: len(poses) > 5, 60), nodes.log('sim_arm')
    rng = np.random.default_rng(0)
    print(f'walls (late share {late}): mm beyond the box {BOX}')
    for name, direction in WALLS.items():
        assert probe.call(Trigger, c.ROBOT_RESET_SERVICE, Trigger.Request(), timeout=30).success
        probe.wait_for(lambda: False, 1.5, lambda: probe.publish(c.POLICY_ACTION, action_msg(np.zeros(4))))
        worst, rest, p = drive_into(probe, poses, direction, late, rng)
        print(f'  {name:9s} farthest outside {worst:6.2f} mm   at rest {rest:6.2f} mm   rest position '
              f'{np.round(p, 4).tolist()}')
    del twists


def flood(probe, nodes) -> None:
    from tests.test_safety_node import Feeder, flood as send_flood
    nodes.start('safety', {**BOX, 'control_rate_hz': 10.0})
    twists = probe.record(c.EE_TWIST_CMD)
    feeder = Feeder(probe)
    assert probe.wait_for(lambda: twists and np.any(twist_linear(twists[-1][1])), 30, feeder.step), nodes.log('safety')
    feeder.send_actions = False
    lines_before = len(nodes.log('safety').splitlines())
    t0 = time.monotonic()
    sent = send_flood(probe, feeder, 5.0)
    probe.wait_for(lambda: False, 0.3, feeder.step)
    out = [(to_sec(m.header.stamp), twist_linear(m)) for t, m in twists if t0 < t < t0 + 5.0]
    stamps, v = np.array([s for s, _ in out]), np.array([v for _, v in out])
    accel = np.linalg.norm(np.diff(v, axis=0), axis=1) / np.maximum(np.diff(stamps), 1e-9)
    flips = int(np.sum(np.diff(np.sign(v[:, 0])) != 0))
    lines = len(nodes.log('safety').splitlines()) - lines_before
    print(f'flood: {sent} actions in 5 s -> {len(out)} twists ({len(out) / 5.0:.1f} Hz), {flips} sign flips, '
          f'max |dv|/dt {accel.max():.1f} m/s^2 (median {np.median(accel):.2f}), {lines} log lines')


def model(examples: int) -> None:
    from tests.safety_world import Burst, World
    rng = np.random.default_rng(0)
    cfg = SafetyConfig(startup_hold_s=0.0)
    lo, hi = np.array(cfg.workspace_min), np.array(cfg.workspace_max)
    worst = rest = 0.0
    near = 0
    for _ in range(examples):
        bursts = [Burst(tuple(rng.choice([-1.0, 1.0, 0.0], 3)) + (0.0,), float(np.exp(rng.uniform(np.log(2), np.log(2000)))),
                        float(rng.uniform(0.05, 2.5)), bool(rng.random() < 0.3)) for _ in range(rng.integers(1, 6))]
        out = World(cfg, lo + rng.random(3) * (hi - lo), int(rng.integers(2**31)), stalls_per_s=1.0).run(bursts)
        worst, rest = max(worst, out.worst_outside_m), max(rest, out.rest_outside_m)
        p = out.final_position
        near += bool(np.min(np.minimum(p - lo, hi - p)) < 0.002)
    print(f'model: {examples} random sequences ({near} ended within 2 mm of a wall): farthest outside '
          f'{worst * 1e3:.6f} mm, at rest {rest * 1e3:.6f} mm')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', nargs='*', default=['model', 'flood', 'walls'], choices=['model', 'flood', 'walls'])
    p.add_argument('--late', type=float, default=0.3, help='share of late actions in the wall drives')
    p.add_argument('--source', type=Path, help='run the node processes from this lamp_ros checkout')
    p.add_argument('--examples', type=int, default=500)
    args = p.parse_args()
    if 'model' in args.what:
        model(args.examples)
    if args.source:                  # `python -m` puts the working directory first on the children's path
        os.environ['PYTHONPATH'] = str(args.source.resolve())
        os.chdir(args.source)
    import rclpy
    from tests.rosprobe import NodeProcesses, Probe
    rclpy.init()
    for what in [w for w in args.what if w != 'model']:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ['XDG_STATE_HOME'] = tmp                     # the e-stop state of this run only
            probe, nodes = Probe(), NodeProcesses(Path(tmp))
            try:
                walls(probe, nodes, args.late) if what == 'walls' else flood(probe, nodes)
            finally:
                nodes.stop_all()
                probe.close()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
