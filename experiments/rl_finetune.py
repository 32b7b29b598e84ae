"""RL finetuning lifts a weak imitation start: success vs env steps in sim, several tasks and seeds.

    python experiments/rl_finetune.py --root runs/rl_finetune --tasks push_button close_microwave turn_tap \
        --seeds 0 1 2 [--budget 20000] [--eval-every 2500] [--demos 10] [--set threads=1]

For each task, each stage a command anyone can run (each resumable: a rerun continues where it stopped):

    1. the weak start: imitation from `--demos` expert demos of the task only, briefly trained
         lamp-train imitate --run-dir ROOT/weak_TASK --set 'imitation.tasks=[TASK]'
                            --set imitation.demos_per_task=10 --set imitation.updates=2000
                            --set 'agent.cameras=[front, wrist]'
    2. per seed: RLPD-style finetuning from it (lamp-train's finetune defaults: 20 expert demos in a demo buffer
       sampled 50/50, layer-normed critic, decaying BC term, success reward ending the episode),
       evaluated every --eval-every env steps on the same 30 held-out scenes, and stopped once the target is met
         lamp-train finetune --run-dir ROOT/TASK_sSEED --task TASK --init ROOT/weak_TASK --seed SEED
                             --set finetune.demo_episodes=20 --set env.episode_steps=50 --set eval_episodes=30
                             --set eval_every=2500 --set prefill_steps=500 --steps K            (K += eval_every)
    3. per seed, once the target is met (or at the budget): the policy exported and scored in onnxruntime on
       --bundle-episodes held-out scenes
         lamp-export ROOT/TASK_sSEED --out ROOT/TASK_sSEED_bundle --overwrite
         lamp-sim eval-bundle ROOT/TASK_sSEED_bundle --task TASK --episodes 50 --json

Results: experiments/results/rl_finetune.{json,md,png}: the start's success, env steps to >= 50% and >= 80%,
the bundle's held-out success with a 95% Wilson interval, wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.jobs import read_evals  # noqa: E402
from lamp_ros.fileio import atomic_write_text  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = REPO / 'experiments' / 'results'
TARGET = 0.8


def run(command: list[str], capture: bool = False) -> str:
    print(f'\n== {" ".join(command)}', flush=True)
    result = subprocess.run(command, cwd=REPO, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return result.stdout or ''


def weak_start(root: Path, task: str, args: argparse.Namespace) -> Path:
    run_dir = root / f'weak_{task}'
    if not (run_dir / 'checkpoints').is_dir() or not (run_dir / 'evals.json').is_file():
        run([str(BIN / 'lamp-train'), 'imitate', '--run-dir', str(run_dir), '--set', f'imitation.tasks=[{task}]',
             '--set', f'imitation.demos_per_task={args.demos}', '--set', f'imitation.updates={args.imitation_updates}',
             '--set', f'agent.cameras=[{", ".join(args.cameras)}]', '--set', 'imitation.eval_episodes=30',
             *[a for s in args.set for a in ('--set', s)]])
    return run_dir


def finetune(root: Path, task: str, seed: int, init: Path, args: argparse.Namespace) -> Path:
    """Finetune in chunks of eval_every env steps until an evaluation reaches the target or the budget ends."""
    run_dir = root / f'{task}_s{seed}'
    while True:
        history = read_evals(run_dir)
        step = history[-1]['step'] if history else 0
        if history and (history[-1]['success_rate'] >= TARGET or step >= args.budget):
            return run_dir
        command = [str(BIN / 'lamp-train'), 'finetune', '--run-dir', str(run_dir),
                   '--steps', str(min(args.budget, step + args.eval_every))]
        if not (run_dir / 'run.json').is_file():
            command += ['--task', task, '--init', str(init), '--seed', str(seed),
                        '--set', f'finetune.demo_episodes={args.buffer_demos}',
                        '--set', f'eval_episodes={args.eval_episodes}',
                        '--set', f'eval_every={args.eval_every}', '--set', f'prefill_steps={args.prefill}',
                        '--set', f'env.episode_steps={args.episode_steps}',
                        *[a for s in args.set for a in ('--set', s)]]
        started = time.monotonic()
        run(command)
        _add_wall_time(run_dir, time.monotonic() - started)


def _add_wall_time(run_dir: Path, seconds: float) -> None:
    path = run_dir / 'wall_time_s.txt'
    before = float(path.read_text()) if path.is_file() else 0.0
    atomic_write_text(path, f'{before + seconds:.1f}\n')


def bundle_check(run_dir: Path, task: str, episodes: int) -> dict:
    bundle = run_dir.with_name(run_dir.name + '_bundle')
    report = bundle / 'eval.json'
    step = read_evals(run_dir)[-1]['step']
    if report.is_file() and json.loads(report.read_text()).get('step') == step:
        return json.loads(report.read_text())
    run([str(BIN / 'lamp-export'), str(run_dir), '--out', str(bundle), '--overwrite'])
    table = json.loads(run([str(BIN / 'lamp-sim'), 'eval-bundle', str(bundle), '--task', task,
                            '--episodes', str(episodes), '--json'], capture=True))
    result = {'step': step, **table['tasks'][task]}
    atomic_write_text(report, json.dumps(result, indent=1) + '\n')
    return result


def first_step_at(history: list[dict], rate: float) -> int | None:
    return next((e['step'] for e in history if e['success_rate'] >= rate), None)


def summary(run_dir: Path, bundle: dict | None) -> dict:
    history = read_evals(run_dir)
    wall = run_dir / 'wall_time_s.txt'
    return {'run': str(run_dir), 'start_success': history[0]['success_rate'],
            'steps_to_50': first_step_at(history, 0.5), 'steps_to_80': first_step_at(history, TARGET),
            'last_step': history[-1]['step'], 'last_success': history[-1]['success_rate'],
            'curve': [(e['step'], e['success_rate']) for e in history], 'bundle': bundle,
            'wall_time_min': float(wall.read_text()) / 60 if wall.is_file() else None}


def write_results(rows: dict[str, list[dict]], args: argparse.Namespace, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f'{name}.json', json.dumps({'settings': vars(args) | {'root': str(args.root)},
                                                            'runs': rows}, indent=1, default=str) + '\n')
    lines = [f'# RL finetuning from a weak imitation start ({name})', '',
             f'Made by `python experiments/rl_finetune.py {" ".join(sys.argv[1:])}`'
             + (' from runs each made by the same script with one `--seeds S` (two at a time on 2 cores).'
                if args.report_only else '.'), '',
             f'Weak start: imitation from {args.demos} expert demos of the task ({", ".join(args.cameras)} cameras); '
             f'finetuning: lamp-train finetune defaults (RLPD-style, success reward)'
             + (f' with {", ".join(f"`{s}`" for s in args.set)}' if args.set else '')
             + f' and {args.buffer_demos} expert demos in its demo buffer. '
             f'Training evaluations: {args.eval_episodes} held-out scenes every {args.eval_every} env steps '
             f'(deterministic policy, torch); bundle: the exported policy in onnxruntime on '
             f'{args.bundle_episodes} held-out scenes (95% Wilson interval). Budget {args.budget} env steps; a run '
             f'stops at the first evaluation >= {TARGET:.0%}. Finetuning episodes: {args.episode_steps} steps.', '',
             '| task | seed | start | steps to 50% | steps to 80% | bundle success (95% CI) | wall min |',
             '|---|---|---|---|---|---|---|']
    for task, runs in rows.items():
        for r in runs:
            seed, b = r['seed'], r['bundle']
            bundle = (f'{b["successes"]}/{b["episodes"]} ({b["ci_low"]:.2f}-{b["ci_high"]:.2f})'
                      if b else '-')
            lines.append(f'| {task} | {seed} | {r["start_success"]:.2f} | {r["steps_to_50"] or "-"} | '
                         f'{r["steps_to_80"] or "not within " + str(r["last_step"])} | {bundle} | '
                         f'{r["wall_time_min"] or 0:.1f} |')
    atomic_write_text(RESULTS / f'{name}.md', '\n'.join(lines) + '\n')
    plot(rows, args, RESULTS / f'{name}.png')
    print('\n'.join(lines))


def plot(rows: dict[str, list[dict]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3.5), squeeze=False)
    for ax, (task, runs) in zip(axes[0], rows.items()):
        for r in runs:
            steps, rates = zip(*r['curve'])
            ax.plot(steps, rates, marker='o', label=f'seed {r["seed"]}')
        ax.axhline(TARGET, color='grey', linestyle='--', linewidth=1)
        ax.set(title=task, xlabel='env steps', ylabel='success (30 held-out scenes)', ylim=(-0.02, 1.02))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', type=Path, default=Path('runs/rl_finetune'), help='where the runs go')
    p.add_argument('--tasks', nargs='+', default=['push_button', 'close_microwave', 'turn_tap'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--demos', type=int, default=10, help='expert demos of the weak start (default 10)')
    p.add_argument('--buffer-demos', type=int, default=20,
                   help="expert demos in finetuning's demo buffer (default 20, lamp-train's default, HIL-SERL's)")
    p.add_argument('--imitation-updates', type=int, default=2000, help="the weak start's BC updates")
    p.add_argument('--cameras', nargs='+', default=['front', 'wrist'], help='cameras the policy sees')
    p.add_argument('--episode-steps', type=int, default=50,
                   help='finetuning episodes (and their evaluations) end after this many steps (default 50)')
    p.add_argument('--budget', type=int, default=20_000, help='env steps per finetuning run at most')
    p.add_argument('--eval-every', type=int, default=2500)
    p.add_argument('--eval-episodes', type=int, default=30)
    p.add_argument('--prefill', type=int, default=500, help='env steps of the starting policy before updates')
    p.add_argument('--bundle-episodes', type=int, default=50)
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='more lamp-train settings')
    p.add_argument('--name', default='rl_finetune', help='results file name in experiments/results/')
    p.add_argument('--report-only', action='store_true',
                   help='train nothing: tabulate the runs under --root as they are (e.g. while seeds run elsewhere)')
    args = p.parse_args()
    rows: dict[str, list[dict]] = {}
    for task in args.tasks:
        init = None if args.report_only else weak_start(args.root, task, args)
        rows[task] = []
        for seed in args.seeds:
            run_dir = args.root / f'{task}_s{seed}' if args.report_only else finetune(args.root, task, seed, init, args)
            if not read_evals(run_dir):
                continue
            report = run_dir.with_name(run_dir.name + '_bundle') / 'eval.json'
            bundle = (json.loads(report.read_text()) if report.is_file() else None) if args.report_only else \
                bundle_check(run_dir, task, args.bundle_episodes)
            rows[task].append({'seed': seed, **summary(run_dir, bundle)})
            write_results(rows, args, args.name)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
