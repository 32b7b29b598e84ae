"""Finetuning on the arm, through the ROS graph (not a test): a weak policy gets better while it runs.

`lamp-ros finetune` on the simulated arm in a DDS domain of its own: the policy starts from a weak bundle, the
learner (in the graph) starts from the weak imitation run, the reward is the episode's success (`reward:=success`:
sim/success ends an episode and pays 1, as an operator's F5 would), and a scripted operator
(lamp_ros/teleop/scripted_operator.py, the named fake of a person with a SpaceMouse) takes over through
teleop/action in the first `--help-episodes` episodes whenever the policy stalls; those steps reach the learner's
demo buffer as interventions. The graph runs in real time (10 Hz), as on a robot. The script watches every
episode's end (episode/status), the policy's model version (policy/status) and the learner (learner/progress),
stops once the success rate over the last `--window` episodes reaches `--target` or after `--minutes`, and
then scores the newest learner bundle with `lamp-sim eval-bundle` on held-out scenes.

    python experiments/online_finetune.py --init runs/rl/weak_push_button --bundle runs/rl/weak_push_button_bundle \
        [--instruction "push button"] [--minutes 45] [--window 20] [--help-episodes 20] [--stall-steps 15]

Writes experiments/results/online_finetune.{md,json} (every episode: success, steps, interventions, model).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
RESULTS = REPO / 'experiments' / 'results'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--init', type=Path, required=True, help='the lamp-train run the learner starts from')
    p.add_argument('--bundle', type=Path, required=True, help="that run's exported bundle: the policy's start")
    p.add_argument('--instruction', default='push button')
    p.add_argument('--task', default='push_button', help='the simulated scene (and the evaluation task)')
    p.add_argument('--run', type=Path, default=Path('runs/online_finetune'), help='learner run directory (new)')
    p.add_argument('--minutes', type=float, default=45.0, help='wall-clock budget (default 45)')
    p.add_argument('--window', type=int, default=20, help='sliding window of episodes (default 20)')
    p.add_argument('--target', type=float, default=0.8, help='success over the window to stop at (default 0.8)')
    p.add_argument('--help-episodes', type=int, default=20, help='episodes the operator may help in (default 20)')
    p.add_argument('--stall-steps', type=int, default=15, help='steps without success before it helps (default 15)')
    p.add_argument('--max-steps', type=int, default=50, help='episode step limit (default 50)')
    p.add_argument('--bundle-every', type=int, default=300, help="learner updates between bundles (default 300)")
    p.add_argument('--eval-episodes', type=int, default=50, help='held-out episodes for the final bundle')
    p.add_argument('--domain-id', type=int, default=1 + os.getpid() % 100)
    return p.parse_args(argv)


def params_file(args: argparse.Namespace, tmp: Path) -> Path:
    params = {
        'sim_arm': {'publish_expert_action': True},
        'episode': {'max_steps': args.max_steps, 'success_sources': ['sim', 'label']},
        'learner': {'run_dir': str(args.run.resolve()), 'bundle_every': args.bundle_every, 'threads': 1},
        'actor': {'outbox_dir': str(tmp / 'outbox'), 'bundle_dir': str(tmp / 'bundles')},
    }
    path = tmp / 'params.yaml'
    path.write_text(json.dumps({node: {'ros__parameters': values} for node, values in params.items()}))
    return path


class Watcher:
    """A ROS node beside the graph: every episode's end, the policy's model, the learner's progress."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from lamp_ros import contract as c
        from lamp_ros.ros.interfaces import message_class, profile
        rclpy.init()
        self.node = rclpy.create_node('online_finetune_watcher')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.c = c
        self.last: dict[str, dict] = {}
        self.episodes: list[dict] = []
        for topic in (c.EPISODE_STATUS, c.POLICY_STATUS, c.LEARNER_PROGRESS, c.TELEOP_STATUS):
            self.node.create_subscription(message_class(topic), topic.name,
                                          lambda msg, name=topic.name: self._on(name, msg), profile(topic))

    def _on(self, name: str, msg) -> None:
        status = json.loads(msg.data)
        before = self.last.get(name, {})
        self.last[name] = status
        if name == self.c.EPISODE_STATUS.name and status.get('state') == 'stopped' and (
                before.get('state') != 'stopped' or before.get('episode') != status.get('episode')):
            self.episodes.append({'episode': status['episode'], 'success': bool(status['success']),
                                  'steps': status['step'], 'interventions': status.get('interventions', 0),
                                  'model': self.last.get(self.c.POLICY_STATUS.name, {}).get('model_version', ''),
                                  'updates': self.last.get(self.c.LEARNER_PROGRESS.name, {}).get('updates', 0),
                                  't': time.monotonic()})

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy
        self.node.destroy_node()
        rclpy.try_shutdown()


def window_rate(episodes: list[dict], window: int) -> float | None:
    if len(episodes) < window:
        return None
    return sum(e['success'] for e in episodes[-window:]) / window


def run_graph(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], float, dict]:
    log = tmp / 'graph.log'
    graph = subprocess.Popen([str(BIN / 'lamp-ros'), 'finetune', '--instruction', args.instruction, '--task', args.task,
                              '--bundle',
                              str(args.bundle), '--init', str(args.init.resolve()), '--reward', 'success',
                              '--params-file', str(params_file(args, tmp))],
                             stdout=open(log, 'w'), stderr=subprocess.STDOUT, cwd=REPO)
    operator = subprocess.Popen([sys.executable, '-m', 'lamp_ros.teleop.scripted_operator', '--ros-args',
                                 '-p', f'help_episodes:={args.help_episodes}', '-p', f'stall_steps:={args.stall_steps}'],
                                stdout=open(tmp / 'operator.log', 'w'), stderr=subprocess.STDOUT, cwd=REPO)
    watcher = Watcher()
    start = time.monotonic()
    try:
        reported = 0
        while time.monotonic() - start < args.minutes * 60:
            watcher.spin(1.0)
            if graph.poll() is not None:
                raise RuntimeError('the finetune graph exited:\n' + log.read_text()[-4000:])
            for e in watcher.episodes[reported:]:
                rate = window_rate(watcher.episodes[:watcher.episodes.index(e) + 1], args.window)
                print(f'{(e["t"] - start) / 60:5.1f} min  episode {e["episode"]:4d}  '
                      f'{"success" if e["success"] else "-------"}  {e["steps"]:3d} steps  '
                      f'{e["interventions"]:3d} operator steps  model {e["model"]}  updates {e["updates"]}'
                      + (f'  window {rate:.2f}' if rate is not None else ''), flush=True)
            reported = len(watcher.episodes)
            rate = window_rate(watcher.episodes, args.window)
            if rate is not None and rate >= args.target and watcher.episodes[-1]['model'].startswith(args.run.name):
                break
        return watcher.episodes, time.monotonic() - start, watcher.last
    finally:
        watcher.close()
        for proc in (operator, graph):
            proc.terminate()
            proc.wait(timeout=60)


def newest_bundle(run: Path) -> Path:
    bundles = sorted((run / 'bundles').glob('v*'))
    if not bundles:
        raise RuntimeError(f'{run}: the learner pushed no bundle')
    return bundles[-1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ['ROS_DOMAIN_ID'] = str(args.domain_id)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('MUJOCO_GL', 'egl')
    if args.run.exists():
        raise SystemExit(f'{args.run} exists: choose a new --run (the experiment starts a learner run from --init)')
    with tempfile.TemporaryDirectory(prefix='online_finetune_') as tmp:
        episodes, seconds, last = run_graph(args, Path(tmp))
    bundle = newest_bundle(args.run)
    evaluation = json.loads(subprocess.run([str(BIN / 'lamp-sim'), 'eval-bundle', str(bundle), '--task', args.task,
                                            '--instruction', args.instruction, '--episodes', str(args.eval_episodes),
                                            '--json'],
                                           check=True, text=True, stdout=subprocess.PIPE, cwd=REPO).stdout)
    write_results(args, episodes, seconds, last, bundle, evaluation)
    return 0


def write_results(args: argparse.Namespace, episodes: list[dict], seconds: float, last: dict, bundle: Path,
                  evaluation: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (task, row), = evaluation['tasks'].items()
    best = max((window_rate(episodes[:k], args.window) or 0.0 for k in range(1, len(episodes) + 1)), default=0.0)
    reached = next((k for k in range(1, len(episodes) + 1)
                    if (window_rate(episodes[:k], args.window) or 0.0) >= args.target), None)
    interventions = sum(e['interventions'] for e in episodes)
    lines = ['# Online finetuning through the ROS graph (sim arm, real time)', '',
             f'Made by `python experiments/online_finetune.py {" ".join(sys.argv[1:])}`.', '',
             f'Start: bundle `{args.bundle}` (learner init `{args.init}`); reward: success (sim/success); scripted '
             f'operator helping in the first {args.help_episodes} episodes after {args.stall_steps} steps without '
             f'success; episodes of at most {args.max_steps} steps at 10 Hz.', '',
             f'- episodes: {len(episodes)}, wall time {seconds / 60:.1f} min, operator steps {interventions} '
             f'(in {sum(e["interventions"] > 0 for e in episodes)} episodes)',
             f'- success over the last {args.window} episodes: best {best:.2f}; reached {args.target:.0%} at episode '
             f'{reached if reached else "-"}'
             + (f' ({(episodes[reached - 1]["t"] - episodes[0]["t"]) / 60:.1f} min after the first episode)'
                if reached else ''),
             f'- learner: {last.get("learner/progress", {}).get("updates", "?")} updates; final bundle `{bundle}`',
             f'- final bundle in `lamp-sim eval-bundle` ({task}, {row["episodes"]} held-out scenes): '
             f'{row["successes"]}/{row["episodes"]} ({row["ci_low"]:.2f}-{row["ci_high"]:.2f})', '',
             '| episode | success | steps | operator steps | model | learner updates |', '|---|---|---|---|---|---|']
    lines += [f'| {e["episode"]} | {"yes" if e["success"] else "no"} | {e["steps"]} | {e["interventions"]} | '
              f'{e["model"]} | {e["updates"]} |' for e in episodes]
    (RESULTS / 'online_finetune.md').write_text('\n'.join(lines) + '\n')
    (RESULTS / 'online_finetune.json').write_text(json.dumps({'args': {k: str(v) for k, v in vars(args).items()},
                                                              'episodes': episodes, 'evaluation': evaluation},
                                                             indent=1) + '\n')
    print('\n'.join(lines[:12]))


if __name__ == '__main__':
    raise SystemExit(main())
