"""Learning evidence (not a test): push_button finetuning from scratch vs from a LAMP-pretrained checkpoint.

    arm scratch   lamp-train finetune --task push_button --preset cpu, seeds 0 1 2
    arm lamp      lamp-train pretrain --preset cpu --reward-checkpoint R3M (seed 0), then
                  lamp-train finetune --task push_button --preset cpu --init <pretrained>, seeds 0 1 2

Each run is a `lamp-train` subprocess with its own log; `--parallel` run at once (each on one torch thread).
Everything is resumable: run the same command again after an interruption and finished runs are skipped,
unfinished ones resume from their last checkpoint. The table and plot are rewritten from whatever evaluations
exist (also with --report-only while runs are going):

    experiments/results/push_button_learning.md    success rate and return vs env steps, per arm and seed
    experiments/results/push_button_learning.png   one plot, both arms (mean and each seed)
    experiments/results/push_button_learning.json  the same numbers (every evaluation of every run)

    python experiments/push_button_learning.py --arms scratch                  # what needs no reward model
    python experiments/push_button_learning.py --arms lamp --reward-checkpoint DIR
    python experiments/push_button_learning.py --report-only
"""
from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lamp_ros.fileio import atomic_write_bytes, atomic_write_text  # noqa: E402

RESULTS = REPO / 'experiments' / 'results'
DEFAULT_RUNS = Path.home() / '.local' / 'share' / 'lamp_ros' / 'experiments' / 'push_button_learning'


@dataclass
class Job:
    name: str
    args: list[str]
    steps: int
    needs: list[str] = field(default_factory=list)


def finished_step(run: Path) -> int:
    evals = run / 'evals.json'
    return json.loads(evals.read_text())[-1]['step'] if evals.is_file() else -1


def jobs_for(args: argparse.Namespace) -> list[Job]:
    common = ['--preset', 'cpu', '--set', f'eval_every={args.eval_every}',
              '--set', f'eval_episodes={args.eval_episodes}', '--set', f'checkpoint_every={args.eval_every}']
    out: list[Job] = []
    if 'scratch' in args.arms:
        for seed in args.seeds:
            out.append(Job(f'scratch_seed{seed}', ['finetune', '--task', 'push_button', '--seed', str(seed),
                                                   '--steps', str(args.steps), *common], args.steps))
    if 'lamp' in args.arms:
        if args.reward_checkpoint is None:
            raise SystemExit('the lamp arm needs --reward-checkpoint (an R3M checkpoint, e.g. the in-domain one from '
                             '`lamp-models finetune-reward`)')
        pre = ['pretrain', '--seed', '0', '--steps', str(args.pretrain_steps), '--reward-checkpoint',
               str(args.reward_checkpoint), *common]
        if args.reward_image_size:
            pre += ['--set', f'reward.image_size={args.reward_image_size}']
        out.append(Job('lamp_pretrain', pre, args.pretrain_steps))
        for seed in args.seeds:
            out.append(Job(f'lamp_seed{seed}', ['finetune', '--task', 'push_button', '--seed', str(seed),
                                                '--steps', str(args.steps), '--init', str(args.runs / 'lamp_pretrain'),
                                                *common], args.steps, needs=['lamp_pretrain']))
    return out


def locked(run: Path) -> bool:
    """True while another process trains the run (it holds RUN/lock): then this script waits for it."""
    if not (run / 'lock').is_file():
        return False
    with open(run / 'lock', 'a+') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def run_jobs(jobs: list[Job], runs: Path, parallel: int) -> None:
    logs = runs / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'LP_NUM_THREADS': '1'}
    pending = [j for j in jobs if finished_step(runs / j.name) < j.steps]
    done = {j.name for j in jobs if j not in pending}
    running: dict[str, tuple[Job, subprocess.Popen]] = {}
    for job in jobs:
        if job.name in done:
            print(f'{job.name}: already finished ({runs / job.name})')
    while pending or running:
        for job in [j for j in pending if finished_step(runs / j.name) >= j.steps and not locked(runs / j.name)]:
            pending.remove(job)                                          # finished by another invocation
            done.add(job.name)
        for name, (job, process) in list(running.items()):
            if process.poll() is not None:
                del running[name]
                if process.returncode != 0:
                    raise SystemExit(f'{name} failed (exit {process.returncode}); see {logs / (name + ".log")}')
                done.add(name)
                print(f'{time.strftime("%H:%M:%S")} {name}: finished')
        elsewhere = [j for j in pending if locked(runs / j.name)]
        ready = [j for j in pending if all(n in done for n in j.needs) and j not in elsewhere]
        ready.sort(key=lambda j: j.name != 'lamp_pretrain')            # the pretraining run gates three others
        while ready and len(running) < parallel:
            job = ready.pop(0)
            pending.remove(job)
            command = [sys.executable, '-m', 'training.cli', *job.args, '--run-dir', str(runs / job.name)]
            if (runs / job.name / 'run.json').is_file():                 # resume: the saved config is authoritative
                command = [sys.executable, '-m', 'training.cli', job.args[0], '--run-dir', str(runs / job.name),
                           '--steps', str(job.steps)]
            log = open(logs / f'{job.name}.log', 'ab')
            running[job.name] = (job, subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log))
            print(f'{time.strftime("%H:%M:%S")} {job.name}: started, log {logs / (job.name + ".log")}')
        if not running and pending and not elsewhere:
            raise SystemExit(f'cannot start {[j.name for j in pending]}: their prerequisites did not finish')
        time.sleep(10)


# --- report ----------------------------------------------------------------------------------------------------

def load_evals(runs: Path, prefix: str, seeds: list[int], steps: int) -> dict[int, list[dict]]:
    """Each seed's evaluations up to `steps` (a run trained longer by an earlier budget is cut to this one)."""
    out = {}
    for seed in seeds:
        path = runs / f'{prefix}_seed{seed}' / 'evals.json'
        if path.is_file():
            out[seed] = [row for row in json.loads(path.read_text()) if row['step'] <= steps]
    return out


def variant_changes(runs: Path, run: Path) -> str:
    from training.config import differences, load_yaml
    base = load_yaml((runs / 'scratch_seed0' / 'config.yaml').read_text())
    changed = [d for d in differences(base, load_yaml((run / 'config.yaml').read_text()))
               if not d.startswith(('steps:', 'seed:'))]
    init = json.loads((run / 'run.json').read_text())['init_run']
    return '; '.join(changed + [f'--init {Path(init).name}' if init else 'from scratch'])


def report(runs: Path, seeds: list[int], steps: int) -> None:
    arms = {'scratch': load_evals(runs, 'scratch', seeds, steps), 'lamp': load_evals(runs, 'lamp', seeds, steps)}
    pretrain = runs / 'lamp_pretrain' / 'evals.json'
    lines = ['# push_button: finetuning from scratch vs from a LAMP-pretrained checkpoint', '',
             f'Generated by `experiments/push_button_learning.py` from the runs in `{runs}`', '',
             'Evaluation: deterministic policy, 10 fixed scenes (the same for every run), success = button pressed '
             'at any step of the 150-step episode; return = sum of the shaped reward. For scale: the scripted '
             'expert returns 288.6 with 100% success (docs/sim.md); untrained policies return 90-105.', '']
    if pretrain.is_file():
        rows = json.loads(pretrain.read_text())
        lines += [f'Pretraining run (seed 0): {rows[-1]["step"]} env steps on lamp/Pretrain-v0.', '']
    for arm, by_seed in arms.items():
        lines += [f'## {arm}', '']
        if not by_seed:
            lines += ['(no runs yet)', '']
            continue
        all_steps = sorted({row['step'] for rows in by_seed.values() for row in rows})
        header = '| env steps | ' + ' | '.join(f'seed {s} success / return' for s in by_seed) + ' | mean success |'
        lines += [header, '|' + '---|' * (len(by_seed) + 2)]
        for step in all_steps:
            cells, rates = [], []
            for rows in by_seed.values():
                row = next((r for r in rows if r['step'] == step), None)
                cells.append(f'{row["success_rate"]:.1f} / {row["mean_return"]:.0f}' if row else '–')
                if row:
                    rates.append(row['success_rate'])
            lines.append(f'| {step} | ' + ' | '.join(cells) + f' | {np.mean(rates):.2f} |')
        finals = {s: rows[-1] for s, rows in by_seed.items()}
        complete = [s for s, r in finals.items() if r['step'] >= steps]
        lines += ['', f'Final ({len(complete)}/{len(seeds)} seeds at {steps} steps): success '
                  + ', '.join(f'seed {s} {r["success_rate"]:.1f} at {r["step"]}' for s, r in finals.items()), '']
    variants = {run.name.removeprefix('variant_'): [r for r in json.loads((run / 'evals.json').read_text())
                                                    if r['step'] <= steps]
                for run in sorted(runs.glob('variant_*')) if (run / 'evals.json').is_file()}
    if variants:
        lines += ['## variants (one seed each, started by hand with `lamp-train finetune ... --set KEY=VALUE`)', '',
                  '| run | ' + ' | '.join(f'{r["step"]}' for r in max(variants.values(), key=len)) + ' |',
                  '|' + '---|' * (1 + max(len(v) for v in variants.values()))]
        for name, rows in variants.items():
            lines.append(f'| {name} | ' + ' | '.join(f'{r["success_rate"]:.1f} / {r["mean_return"]:.0f}'
                                                     for r in rows) + ' |')
        lines += ['', 'What each variant changes from the scratch arm\'s config (and whether it starts from the '
                  'pretrained run):', '']
        for name in variants:
            lines.append(f'- {name}: {variant_changes(runs, runs / ("variant_" + name))}')
        lines.append('')
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / 'push_button_learning.md', '\n'.join(lines) + '\n')
    numbers = {'finetune_steps': steps, 'pretrain_step': json.loads(pretrain.read_text())[-1]['step']
               if pretrain.is_file() else None, 'arms': {arm: {str(s): rows for s, rows in by_seed.items()}
                                                         for arm, by_seed in arms.items()},
               'variants': variants}
    atomic_write_text(RESULTS / 'push_button_learning.json', json.dumps(numbers, indent=1) + '\n')
    plot(arms, variants, RESULTS / 'push_button_learning.png')
    print(f'table: {RESULTS / "push_button_learning.md"}\nplot:  {RESULTS / "push_button_learning.png"}\n'
          f'numbers: {RESULTS / "push_button_learning.json"}')


def plot(arms: dict[str, dict[int, list[dict]]], variants: dict[str, list[dict]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = {'scratch': 'tab:blue', 'lamp': 'tab:red'}
    for arm, by_seed in arms.items():
        for key, ax in zip(('success_rate', 'mean_return'), axes):
            for rows in by_seed.values():
                ax.plot([r['step'] for r in rows], [r[key] for r in rows], color=colours[arm], alpha=0.3, lw=1)
            if by_seed:
                common = sorted(set.intersection(*[{r['step'] for r in rows} for rows in by_seed.values()]))
                mean = [np.mean([next(r[key] for r in rows if r['step'] == s) for rows in by_seed.values()])
                        for s in common]
                ax.plot(common, mean, color=colours[arm], lw=2.5, label=f'{arm} (mean of {len(by_seed)} seeds)')
    for (name, rows), style in zip(variants.items(), ('--', ':', '-.', (0, (5, 1)))):
        for key, ax in zip(('success_rate', 'mean_return'), axes):
            ax.plot([r['step'] for r in rows], [r[key] for r in rows], color='k', ls=style, lw=1.2,
                    label=f'variant {name}')
    axes[0].set(xlabel='env steps (finetuning)', ylabel='success rate', ylim=(-0.05, 1.05))
    axes[1].set(xlabel='env steps (finetuning)', ylabel='mean eval return')
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle('push_button, cpu preset: from scratch vs LAMP-pretrained', fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arms', nargs='+', choices=['scratch', 'lamp'], default=['scratch', 'lamp'])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=15_000, help='finetuning env steps per run (default 15000)')
    parser.add_argument('--pretrain-steps', type=int, default=15_000, help='pretraining env steps (default 15000)')
    parser.add_argument('--eval-every', type=int, default=2_500, help='env steps between evaluations (default 2500)')
    parser.add_argument('--eval-episodes', type=int, default=10)
    parser.add_argument('--reward-checkpoint', type=Path, default=None, help='R3M checkpoint for the lamp arm')
    parser.add_argument('--reward-image-size', type=int, default=0,
                        help='resize frames to this for the reward model (its training size; default: as rendered)')
    parser.add_argument('--runs', type=Path, default=DEFAULT_RUNS, help=f'run directories (default {DEFAULT_RUNS})')
    parser.add_argument('--parallel', type=int, default=2, help='runs at once (default 2: one per core)')
    parser.add_argument('--report-only', action='store_true', help='only rewrite the table and plot')
    args = parser.parse_args()
    args.runs = args.runs.expanduser().resolve()
    if not args.report_only:
        run_jobs(jobs_for(args), args.runs, args.parallel)
    report(args.runs, args.seeds, args.steps)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
