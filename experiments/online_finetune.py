"""Finetuning on the arm, through the ROS graph (not a test): a weak policy gets better while it runs.

`lamp-ros finetune` on the simulated arm in a DDS domain of its own: the policy starts from a weak bundle, the
learner (in the graph) starts from the weak imitation run, the reward is the episode's success (`reward:=success`:
sim/success ends an episode and pays 1, as an operator's F5 would), and a scripted operator
(lamp_ros/nodes/scripted_operator.py, the named fake of a person with a SpaceMouse) takes over through
teleop/action in the first `--help-episodes` episodes whenever the policy stalls; those steps reach the learner's
demo buffer as interventions. Before the graph starts, `--demos` scripted-expert episodes of the task (HIL-SERL's
20 teleoperated demos; `lamp-sim record-demos`, on scenes of their own) are recorded for the learner's
`demos_dir`: episodes without intervention flags enter its demo buffer whole. The graph runs in real time
(10 Hz), as on a robot. The script watches every episode's end (episode/status), the policy's model version (policy/status) and the learner (learner/progress),
stops once the policy's success rate over the last `--window` episodes (an episode the operator helped in counts
as a failure) has reached `--target` and the newest learner bundle, scored then with `lamp-sim eval-bundle` on
held-out scenes (in the background, once per bundle), passes it too; or after `--minutes`. It then scores the
newest learner bundle on the held-out scenes.

    python experiments/online_finetune.py --init runs/rl/weak_push_button --bundle runs/rl/weak_push_button_bundle \
        [--instruction "push button"] [--minutes 45] [--window 20] [--help-episodes 20] [--stall-steps 15] \
        [--demos 20]

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

from lamp_ros.fileio import atomic_write_text  # noqa: E402

BIN = Path(sys.executable).parent
DEMO_SEED = 2_060_000_000           # the demos' scenes: neither training's nor the held-out evaluation's
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
    p.add_argument('--demos', type=int, default=20, help="expert demos for the learner's demo buffer (default 20)")
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help="the learner run's config overrides (lamp-ros learner --set), e.g. "
                        'finetune.bc_decay_steps=40000')
    p.add_argument('--bundle-every', type=int, default=300, help="learner updates between bundles (default 300)")
    p.add_argument('--eval-episodes', type=int, default=50, help='held-out episodes for the final bundle')
    p.add_argument('--domain-id', type=int, default=1 + os.getpid() % 100)
    return p.parse_args(argv)


def params_file(args: argparse.Namespace, tmp: Path) -> Path:
    params = {
        'sim_arm': {'publish_expert_action': True, 'image_size': list(bundle_image_size(args))},
        'episode': {'max_steps': args.max_steps, 'success_sources': ['sim', 'label']},
        'learner': {'run_dir': str(args.run.resolve()), 'bundle_every': args.bundle_every, 'threads': 1,
                    **({'settings': list(args.set)} if args.set else {}),
                    **({'demos_dir': str(demos_dir(args).resolve())} if args.demos else {})},
        'actor': {'outbox_dir': str(tmp / 'outbox'), 'bundle_dir': str(tmp / 'bundles')},
    }
    path = tmp / 'params.yaml'
    path.write_text(json.dumps({node: {'ros__parameters': values} for node, values in params.items()}))
    return path


def bundle_image_size(args: argparse.Namespace) -> tuple[int, int]:
    """The policy's image size: the simulated cameras render at it, as the policy's training scenes did."""
    from models.bundle import read_manifest
    return read_manifest(args.bundle, verify_files=False).image_size


def demos_dir(args: argparse.Namespace) -> Path:
    return args.run.with_name(args.run.name + '_demos')


def record_demos(args: argparse.Namespace) -> None:
    """The expert's episodes, ending at success, with the instruction the graph runs (kept if already there)."""
    subprocess.run([str(BIN / 'lamp-sim'), 'record-demos', '--tasks', args.task, '--episodes', str(args.demos),
                    '--out', str(demos_dir(args)), '--seed', str(DEMO_SEED), '--after-success', '0',
                    '--image-size', str(bundle_image_size(args)[0]),
                    '--no-paraphrase', '--quiet'], check=True, cwd=REPO)


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


def policy_success(episode: dict) -> bool:
    """The policy's own success: an episode the operator drove any step of does not count."""
    return episode['success'] and not episode['interventions']


def window_rate(episodes: list[dict], window: int) -> float | None:
    if len(episodes) < window:
        return None
    return sum(policy_success(e) for e in episodes[-window:]) / window


def run_graph(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], float, dict, list[dict]]:
    log = tmp / 'graph.log'
    graph = subprocess.Popen([str(BIN / 'lamp-ros'), 'finetune', '--instruction', args.instruction, '--task', args.task,
                              '--bundle',
                              str(args.bundle), '--init', str(args.init.resolve()), '--reward', 'success',
                              '--params-file', str(params_file(args, tmp))],
                             stdout=open(log, 'w'), stderr=subprocess.STDOUT, cwd=REPO)
    operator = subprocess.Popen([sys.executable, '-m', 'lamp_ros.nodes.scripted_operator', '--ros-args',
                                 '-p', f'help_episodes:={args.help_episodes}', '-p', f'stall_steps:={args.stall_steps}'],
                                stdout=open(tmp / 'operator.log', 'w'), stderr=subprocess.STDOUT, cwd=REPO)
    watcher = Watcher()
    start = time.monotonic()
    checks = BundleChecks(args, tmp)
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
            if checks.step(watcher.episodes, args, time.monotonic() - start):
                break
        return watcher.episodes, time.monotonic() - start, watcher.last, checks.done
    finally:
        watcher.close()
        checks.close()
        for proc in (operator, graph):
            proc.terminate()
            proc.wait(timeout=60)


class BundleChecks:
    """A window at the target is not yet a good policy (20 episodes can be a lucky streak): the newest learner
    bundle is then scored on held-out scenes (eval-bundle, in the background while the graph runs), and the run
    stops only once one passes too. Each bundle is checked once."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.done: list[dict] = []                          # {minutes, bundle, successes, episodes, rate}
        self._running: tuple[subprocess.Popen, Path, float] | None = None

    def step(self, episodes: list[dict], args: argparse.Namespace, seconds: float) -> bool:
        """Start or collect a check; True once a bundle passed."""
        if self._running is not None and self._running[0].poll() is not None:
            self._collect()
            return bool(self.done) and self.done[-1]['rate'] >= args.target
        rate = window_rate(episodes, args.window)
        if self._running is None and rate is not None and rate >= args.target and \
                episodes[-1]['model'].startswith(args.run.name):
            bundle = newest_bundle(args.run)
            if str(bundle) not in {c['bundle'] for c in self.done}:
                out = self.tmp / f'check_{bundle.name}.json'
                process = subprocess.Popen(eval_command(args, bundle), stdout=open(out, 'w'),
                                           stderr=subprocess.DEVNULL, cwd=REPO)
                self._running = (process, bundle, seconds)
        return False

    def _collect(self) -> None:
        process, bundle, seconds = self._running
        self._running = None
        row = next(iter(json.loads((self.tmp / f'check_{bundle.name}.json').read_text())['tasks'].values()))
        self.done.append({'minutes': seconds / 60, 'bundle': str(bundle), 'successes': row['successes'],
                          'episodes': row['episodes'], 'rate': row['rate']})
        print(f'{seconds / 60:5.1f} min  bundle {bundle.name} on held-out scenes: {row["successes"]}/'
              f'{row["episodes"]}', flush=True)

    def close(self) -> None:
        if self._running is not None:
            self._running[0].kill()
            self._running[0].wait()


def eval_command(args: argparse.Namespace, bundle: Path) -> list[str]:
    return [str(BIN / 'lamp-sim'), 'eval-bundle', str(bundle), '--task', args.task, '--instruction', args.instruction,
            '--episodes', str(args.eval_episodes), '--workers', '1', '--json']


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
    if args.demos:
        record_demos(args)
    with tempfile.TemporaryDirectory(prefix='online_finetune_') as tmp:
        episodes, seconds, last, checks = run_graph(args, Path(tmp))
    bundle = newest_bundle(args.run)
    evaluation = json.loads(subprocess.run(eval_command(args, bundle), check=True, text=True, stdout=subprocess.PIPE,
                                           cwd=REPO).stdout)
    write_results(args, episodes, seconds, last, bundle, evaluation, checks)
    return 0


def write_results(args: argparse.Namespace, episodes: list[dict], seconds: float, last: dict, bundle: Path,
                  evaluation: dict, checks: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (task, row), = evaluation['tasks'].items()
    interventions = sum(e['interventions'] for e in episodes)
    lines = ['# Online finetuning through the ROS graph (sim arm, real time)', '',
             f'Made by `python experiments/online_finetune.py {" ".join(sys.argv[1:])}`.', '',
             f'Start: bundle `{args.bundle}` (learner init `{args.init}`); reward: success (sim/success); scripted '
             f'operator helping in the first {args.help_episodes} episodes after {args.stall_steps} steps without '
             f'success; {args.demos} expert demos in the learner\'s demo buffer; episodes of at most '
             f'{args.max_steps} steps at 10 Hz.', '',
             f'- episodes: {len(episodes)}, wall time {seconds / 60:.1f} min, operator steps {interventions} '
             f'(in {sum(e["interventions"] > 0 for e in episodes)} episodes)',
             window_line(episodes, args.window, args.target),
             f'- learner: {last.get("learner/progress", {}).get("updates", "?")} updates; final bundle `{bundle}`',
             f'- final bundle in `lamp-sim eval-bundle` ({task}, {row["episodes"]} held-out scenes): '
             f'{row["successes"]}/{row["episodes"]} ({row["ci_low"]:.2f}-{row["ci_high"]:.2f})',
             '- held-out checks while it ran (at each window hit, a bundle once): '
             + (', '.join(f'{c["minutes"]:.1f} min {Path(c["bundle"]).name} {c["successes"]}/{c["episodes"]}'
                          for c in checks) or 'none'), '',
             '| episode | success | steps | operator steps | model | learner updates |', '|---|---|---|---|---|---|']
    lines += [f'| {e["episode"]} | {"yes" if e["success"] else "no"} | {e["steps"]} | {e["interventions"]} | '
              f'{e["model"]} | {e["updates"]} |' for e in episodes]
    atomic_write_text(RESULTS / 'online_finetune.md', '\n'.join(lines) + '\n')
    atomic_write_text(RESULTS / 'online_finetune.json', json.dumps(
        {'args': {k: str(v) for k, v in vars(args).items()}, 'episodes': episodes, 'evaluation': evaluation,
         'checks': checks}, indent=1) + '\n')
    print('\n'.join(lines[:12]))


def window_line(episodes: list[dict], window: int, target: float) -> str:
    """The best sliding-window success and the episode (and minute) the window first reached the target."""
    rates = [window_rate(episodes[:k], window) or 0.0 for k in range(1, len(episodes) + 1)]
    reached = next((k for k, rate in enumerate(rates, 1) if rate >= target), None)
    when = (f' ({(episodes[reached - 1]["t"] - episodes[0]["t"]) / 60:.1f} min after the first episode)'
            if reached else '')
    return (f'- policy success (operator-helped episodes count as failures) over the last {window} episodes: '
            f'best {max(rates, default=0.0):.2f}; reached {target:.0%} at episode {reached or "-"}{when}')

if __name__ == '__main__':
    raise SystemExit(main())
