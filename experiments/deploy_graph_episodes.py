"""Deployment evidence (not a test): the policy bundle run through the whole ROS deploy graph in sim, N episodes.

`lamp-ros deploy` (default: the shipped bundle, bundles/default) runs as a subprocess in a DDS domain of its
own; this script drives episodes over the episode services like an operator would (episode/reset: arm home
and the next scene of the seeded sequence; episode/start) and counts success as the simulator judges it
(sim/success, through the episode node). The policy acts only inside episodes (policy require_episode), so
each starts at home, as `lamp-train eval` episodes do. The issue's target: >= 8 of 10 for push_button.

    python experiments/deploy_graph_episodes.py                         # 10 episodes, "push button"
    python experiments/deploy_graph_episodes.py --instruction "turn the tap" --episodes 5
    python experiments/deploy_graph_episodes.py --bundle bundles/mine --out /tmp/mine.md

Prints each episode and successes/N; writes experiments/results/deploy_graph_episodes.md (or --out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / 'experiments' / 'results' / 'deploy_graph_episodes.md'
TARGET = 0.8
HELD_OUT_SEED_BASE = 2_000_000_000     # = sim.evaluation.HELD_OUT_SEED_BASE (not imported: it loads MuJoCo)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--episodes', type=int, default=10, help='episodes to run (default 10)')
    p.add_argument('--instruction', default='push button', help='instruction (default "push button")')
    p.add_argument('--task', default='', help='sim scene (default: the task the instruction names)')
    p.add_argument('--bundle', default='', help='policy bundle directory (default: the shipped bundles/default)')
    p.add_argument('--seed', type=int, default=HELD_OUT_SEED_BASE,
                   help='sim_arm seed: the first scene of the sequence (default: a held-out seed no training uses, '
                        f'{HELD_OUT_SEED_BASE})')
    p.add_argument('--episode-timeout', type=float, default=120.0, metavar='S',
                   help='wall-clock seconds one episode may take (150 steps at 10 Hz is 15 s; default 120)')
    p.add_argument('--domain-id', type=int, default=1 + os.getpid() % 100,
                   help='ROS_DOMAIN_ID of the graph and this script (default: from the process id)')
    p.add_argument('--out', type=Path, default=RESULTS, help=f'report file (default {RESULTS.relative_to(REPO)})')
    return p.parse_args(argv)


class EpisodeDriver:
    """A ROS node beside the graph: episode services, episode/status, sim/success, policy/status."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_srvs.srv import Trigger

        from lamp_ros import contract as c
        from lamp_ros.ros.interfaces import message_class, profile
        self.c, self.Trigger = c, Trigger
        rclpy.init()
        self.node = rclpy.create_node('deploy_graph_episodes')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.last: dict[str, object] = {}
        self.sim_success_since_start = False
        for topic in (c.EPISODE_STATUS, c.POLICY_STATUS, c.SIM_SUCCESS):
            self.node.create_subscription(message_class(topic), topic.name,
                                          lambda msg, name=topic.name: self._on(name, msg), profile(topic))

    def _on(self, name: str, msg) -> None:
        self.last[name] = msg
        if name == self.c.SIM_SUCCESS.name and msg.data:
            self.sim_success_since_start = True

    def status(self, name: str) -> dict:
        return json.loads(self.last[name].data) if name in self.last else {}

    def wait_for(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not predicate():
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def call(self, service: str, timeout: float = 30.0):
        client = self.node.create_client(self.Trigger, service)
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f'service {service} not available')
        future = client.call_async(self.Trigger.Request())
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise RuntimeError(f'service {service} did not answer in {timeout} s')
        self.node.destroy_client(client)
        return future.result()

    def reset(self) -> None:
        """episode/reset, retried while the episode node has not yet discovered the arm's robot/reset."""
        for _ in range(60):
            result = self.call(self.c.EPISODE_RESET_SERVICE)
            if result.success or 'is not available' not in result.message:
                break
            self.wait_for(lambda: False, 0.5)
        if not result.success:
            raise RuntimeError(f'episode reset failed: {result.message}')

    def episode(self, timeout: float) -> dict:
        """Reset, start, wait for the stop; the episode node's final status, plus whether sim/success was seen."""
        topic = self.c.EPISODE_STATUS.name
        self.reset()
        self.sim_success_since_start = False
        if not self.call(self.c.EPISODE_START_SERVICE).success:
            raise RuntimeError('episode start refused')
        if not self.wait_for(lambda: self.status(topic).get('state') == 'running', 10):
            raise RuntimeError(f'the episode did not start: {self.status(topic)}')
        number = self.status(topic)['episode']
        if not self.wait_for(lambda: self.status(topic)['episode'] == number
                             and self.status(topic)['state'] == 'stopped', timeout):
            raise RuntimeError(f'episode {number} did not stop within {timeout} s: {self.status(topic)}')
        result = self.status(topic)
        self.wait_for(lambda: False, 0.5)    # sim/success and the status arrive by different paths
        result['sim_success_seen'] = self.sim_success_since_start
        return result

    def close(self) -> None:
        import rclpy
        self.node.destroy_node()
        rclpy.try_shutdown()


def start_graph(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, Path]:
    params = tmp / 'params.yaml'
    params.write_text(f'policy:\n  ros__parameters:\n    require_episode: true\n'
                      f'sim_arm:\n  ros__parameters:\n    seed: {args.seed}\n')
    log = tmp / 'deploy.log'
    cmd = [sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--instruction', args.instruction,
           '--params-file', str(params), '--task', args.task, '--bundle', args.bundle]
    proc = subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT, cwd=REPO)
    return proc, log


def report(args: argparse.Namespace, policy: dict, results: list[dict], seconds: float) -> str:
    successes = sum(r['success'] for r in results)
    lines = [
        '# Episodes through the ROS deploy graph (sim)', '',
        f'Generated by `experiments/deploy_graph_episodes.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC '
        f'in {seconds:.0f} s.', '',
        f'Bundle `{policy.get("bundle")}`, model `{policy.get("model_version")}`; instruction "{args.instruction}"'
        f'{f", task {args.task}" if args.task else ""}; sim_arm seed {args.seed}. `lamp-ros deploy` with the policy '
        'acting only inside episodes; each episode: episode/reset (arm home, next scene), episode/start, until '
        'sim/success (the episode node stops it) or the 150-step limit.', '',
        f'**Successes: {successes}/{len(results)}** (target >= {TARGET:.0%}).', '',
        '| episode | success | steps | stop reason |', '|---|---|---|---|']
    lines += [f'| {i} | {"yes" if r["success"] else "no"} | {r["step"]} | {r["stop_reason"]} |'
              for i, r in enumerate(results, 1)]
    return '\n'.join(lines) + '\n'


def run(args: argparse.Namespace, tmp: Path) -> tuple[dict, list[dict]]:
    proc, log = start_graph(args, tmp)
    driver = EpisodeDriver()
    try:
        policy = driver.c.POLICY_STATUS.name
        if not driver.wait_for(lambda: driver.status(policy).get('model_version') or proc.poll() is not None, 120):
            raise RuntimeError('the policy did not load its bundle in 120 s:\n' + log.read_text()[-3000:])
        if proc.poll() is not None:
            raise RuntimeError('the deploy graph exited:\n' + log.read_text()[-3000:])
        print(f'graph up: model {driver.status(policy)["model_version"]}, bundle {driver.status(policy)["bundle"]}',
              flush=True)
        results = []
        for i in range(1, args.episodes + 1):
            r = driver.episode(args.episode_timeout)
            r['success'] = bool(r['success'] and r['success_source'] == 'sim')
            results.append(r)
            print(f'episode {i}: {"success" if r["success"] else "no success"} after {r["step"]} steps '
                  f'({r["stop_reason"]}; sim/success seen: {r["sim_success_seen"]})', flush=True)
        return driver.status(policy), results
    finally:
        driver.close()
        proc.terminate()
        proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ['ROS_DOMAIN_ID'] = str(args.domain_id)          # before rclpy starts; the graph inherits it
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from lamp_ros.fileio import atomic_write_text
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='deploy_graph_episodes_') as tmp:
        policy, results = run(args, Path(tmp))
    successes = sum(r['success'] for r in results)
    print(f'successes: {successes}/{len(results)} (steps: {[r["step"] for r in results]}; '
          f'target >= {TARGET:.0%})')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, report(args, policy, results, time.monotonic() - start))
    print(f'report: {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
