"""LAMP's claim, measured: RL finetuning from scratch vs from a novelty-only pretrained agent (Plan2Explore) vs from
a LAMP-pretrained agent (alpha * r_VLM + (1 - alpha) * novelty), same demos and budget, several tasks and seeds.

    python experiments/lamp_vs_scratch.py --runs runs/lamp_vs_scratch [--tasks push_button close_microwave
        pick_up_cup] [--seeds 0 1 2 3 4] [--demos 5] [--steps 20000] [--pretrain-steps 100000] [--parallel 2]
    python experiments/lamp_vs_scratch.py --runs runs/lamp_vs_scratch --report-only    # tabulate what exists

Stages (each resumable: run the same command again and it goes on where it stopped; pretraining takes hours):

    1. the in-domain reward model, unless --reward-checkpoint is given (no pretrained R3M weights here):
         lamp-sim record-demos --tasks all pretrain --episodes 100 --out RUNS/reward_demos --image-size 128
         lamp-models finetune-reward --size 18 --episodes RUNS/reward_demos --out RUNS/r3m_insim
                                     --train-last-stage --steps 1500
    2. two pretraining runs on the randomized pretraining scene, the same R3M giving both the instruction encoder:
         novelty  lamp-train pretrain --alpha 0   --reward-checkpoint R3M --steps P   (Plan2Explore)
         lamp     lamp-train pretrain --alpha 0.1 --reward-checkpoint R3M --steps P   (LAMP)
    3. per arm, task and seed, RL finetuning (lamp-train finetune's defaults: success reward ending the episode,
       --demos expert demos in a demo buffer sampled 50/50, BC term, layer-normed critic), evaluated on the same
       --eval-episodes held-out scenes every --eval-every env steps, run in chunks of --eval-every env steps and
       stopped at its first evaluation >= 80% (the table needs no more):
         scratch  lamp-train finetune --task T --seed S --reward-checkpoint R3M
         novelty  lamp-train finetune --task T --seed S --init RUNS/pretrain_novelty
         lamp     lamp-train finetune --task T --seed S --init RUNS/pretrain_lamp

Every arm sees the same cameras (--cameras, default front and wrist: RL finetuning from the front camera alone held
no gains in experiments/results/rl_finetune_push_variants.md) and the same instruction encoder. Results:
experiments/results/lamp_vs_scratch.{md,json,png}: per arm and task, env steps to 50% and 80% success (median over
seeds with a bootstrap 95% interval; a seed that never got there counts as the budget, marked), the learning curves,
the pretraining budget used, and a plain conclusion.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.jobs import Job, read_evals, run_jobs  # noqa: E402
from lamp_ros.fileio import atomic_write_bytes, atomic_write_text  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = REPO / 'experiments' / 'results'
ARMS = ('scratch', 'novelty', 'lamp')
ALPHA = {'novelty': 0.0, 'lamp': 0.1}                   # r_VLM's weight in the pretraining reward (LAMP: 0.1)
RATES = (0.5, 0.8)


def reward_checkpoint(args: argparse.Namespace) -> Path:
    """The R3M of every arm: the one given, or the in-domain one trained here (once)."""
    if args.reward_checkpoint is not None:
        return args.reward_checkpoint.resolve()
    out = args.runs / 'r3m_insim'
    if not (out / 'model.pt').is_file():
        demos = args.runs / 'reward_demos'
        subprocess.run([str(BIN / 'lamp-sim'), 'record-demos', '--tasks', 'all', 'pretrain', '--episodes', '100',
                        '--out', str(demos), '--image-size', '128'], check=True, cwd=REPO)
        subprocess.run([str(BIN / 'lamp-models'), 'finetune-reward', '--size', '18', '--episodes', str(demos),
                        '--out', str(out), '--train-last-stage', '--steps', '1500', '--threads', '1',
                        *device_args(args)], check=True, cwd=REPO)
    return out


def device_args(args: argparse.Namespace) -> list[str]:
    """--device for a GPU; nothing on the CPU (the commands runs made so far were given stay the same)."""
    return [] if args.device == 'cpu' else ['--device', args.device]


def jobs_for(args: argparse.Namespace, r3m: Path) -> list[Job]:
    cameras = f'agent.cameras=[{", ".join(args.cameras)}]'
    common = ['--preset', args.preset, '--set', f'eval_every={args.eval_every}',
              '--set', f'eval_episodes={args.eval_episodes}',
              '--set', f'checkpoint_every={args.eval_every}', '--set', cameras, *device_args(args)]
    critic = ['--set', 'agent.critic_layernorm=true']  # a pretrained run's critic is kept: the one scratch gets
    jobs = [Job(f'pretrain_{arm}', ['pretrain', '--seed', '0', '--alpha', str(ALPHA[arm]), '--reward-checkpoint',
                                    str(r3m), *common, *critic], args.pretrain_steps)
            for arm in args.arms if arm in ALPHA]
    finetune = ['--set', f'finetune.demo_episodes={args.demos}', '--set', f'env.episode_steps={args.episode_steps}',
                *common]
    for arm in args.arms:
        start = (['--reward-checkpoint', str(r3m)] if arm == 'scratch'
                 else ['--init', str(args.runs / f'pretrain_{arm}')])
        for task in args.tasks:
            for seed in args.seeds:
                jobs.append(Job(f'{arm}_{task}_s{seed}', ['finetune', '--task', task, '--seed', str(seed), *start,
                                                          *finetune], args.steps,
                                needs=[] if arm == 'scratch' else [f'pretrain_{arm}'], stop_at=max(RATES),
                                chunk=args.eval_every))         # steps to 80% is all the table needs
    return jobs


# --- report ----------------------------------------------------------------------------------------------------

def curve(run: Path, budget: int) -> list[tuple[int, float]]:
    return [(r['step'], r['success_rate']) for r in read_evals(run) if r['step'] <= budget]


def steps_to(points: list[tuple[int, float]], rate: float, budget: int) -> tuple[int, bool]:
    """(env steps of the first evaluation at >= rate, reached); not reached: (budget, False), a censored value."""
    step = next((s for s, r in points if r >= rate), None)
    return (step, True) if step is not None else (budget, False)


def median_interval(values: list[float], rng: np.random.Generator, draws: int = 2000,
                    statistic=np.median) -> tuple[float, float, float]:
    """A statistic over seeds (the median unless told) and its bootstrap 95% interval (percentile method)."""
    data = np.asarray(values, float)
    resampled = statistic(rng.choice(data, (draws, len(data))), axis=1)
    return float(statistic(data)), float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))


def summarize(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    table = {f'{arm}/{task}': arm_row({s: curve(args.runs / f'{arm}_{task}_s{s}', args.steps) for s in args.seeds},
                                      args.steps, rng)
             for arm in args.arms for task in args.tasks}
    pretrain = {arm: curve(args.runs / f'pretrain_{arm}', 10 ** 12)[-1:] for arm in args.arms if arm in ALPHA}
    return {'table': table, 'pretrain_steps': {a: (c[0][0] if c else 0) for a, c in pretrain.items()},
            'pretrain_reward': {arm: pretraining_reward(args.runs / f'pretrain_{arm}', ALPHA[arm]) for arm in pretrain}}


def pretraining_reward(run: Path, alpha: float) -> dict | None:
    """The pretraining reward's two terms per env step, as weighted into it: alpha * r_VLM (mean; spread within an
    episode and over all steps, from the replay) and (1 - alpha) * novelty (mean of what the updates of the run's
    second half logged). alpha weighs raw scales, so these say which term the agent actually chased."""
    episodes = [np.load(path)['vlm_reward'] for path in sorted((run / 'replay').glob('*.npz'))]
    if not episodes:
        return None
    novelty = logged_mean(run / 'tb', 'train/intrinsic_reward')
    every_step = np.concatenate(episodes)
    return {'vlm_mean': alpha * float(every_step.mean()),
            'vlm_std_within_episode': alpha * float(np.mean([e.std() for e in episodes])),
            'vlm_std': alpha * float(every_step.std()),
            'novelty_mean': None if novelty is None else (1 - alpha) * novelty}


def logged_mean(tb_dir: Path, tag: str) -> float | None:
    """Mean of a TensorBoard scalar over the second half of its points; None if the run never logged it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tb_dir))
    events.Reload()
    if tag not in events.Tags()['scalars']:
        return None
    values = [event.value for event in events.Scalars(tag)]
    return float(np.mean(values[len(values) // 2:]))


def reward_lines(summary: dict) -> list[str]:
    """One line per pretraining arm: what its reward was made of."""
    lines = []
    for arm, terms in summary['pretrain_reward'].items():
        if terms is None:
            continue
        novelty = 'not logged' if terms['novelty_mean'] is None else f'{terms["novelty_mean"]:.4f}'
        if not ALPHA[arm]:
            lines.append(f'- {arm} (alpha 0): novelty alone, mean {novelty} per step')
            continue
        lines.append(f'- {arm} (alpha {ALPHA[arm]}): alpha r_VLM mean {terms["vlm_mean"]:.3f} per step, spread '
                     f'{terms["vlm_std_within_episode"]:.3f} within an episode and {terms["vlm_std"]:.3f} over all '
                     f'steps; (1 - alpha) novelty mean {novelty}')
    return lines


def arm_row(curves: dict[int, list[tuple[int, float]]], budget: int, rng: np.random.Generator) -> dict:
    """One arm on one task: its curves, and steps to each rate over the seeds that finished (budget or 80%)."""
    finished = {s: c for s, c in curves.items() if c and (c[-1][0] >= budget or c[-1][1] >= max(RATES))}
    entry: dict = {'curves': curves, 'seeds_finished': sorted(finished)}
    for rate in RATES:
        hits = [steps_to(c, rate, budget) for c in finished.values()]
        entry[f'to_{rate:.0%}'] = {'per_seed': hits, 'reached': sum(ok for _, ok in hits),
                                   'median_ci': median_interval([h for h, _ in hits], rng) if hits else None}
    return entry


def conclusion(summary: dict, args: argparse.Namespace) -> str:
    """Per task: which arm reached 50% first (median over seeds), then every arm's mean success at the budget,
    each with whether the leader's interval is clear of the others' (overlap: no evidence of a difference)."""
    rng = np.random.default_rng(2)
    lines = []
    for task in args.tasks:
        rows = {arm: summary['table'][f'{arm}/{task}'] for arm in args.arms}
        medians = {arm: row['to_50%']['median_ci'] for arm, row in rows.items()}
        if None in medians.values():
            lines.append(f'- {task}: not every arm has finished seeds yet.')
            continue
        if any(row['to_50%']['reached'] for row in rows.values()):
            best = min(medians, key=lambda a: medians[a][0])
            first = (f'{best} reaches 50% first (median {medians[best][0]:.0f} env steps); '
                     + _clear_of_others(best, medians, lower_is_better=True))
        else:
            first = f'no arm reaches 50% within {args.steps} env steps'
        lines.append(f'- {task}: {first}. {_at_budget(rows, args, rng)}')
    return '\n'.join(lines)


def _clear_of_others(best: str, intervals: dict[str, tuple[float, float, float]], lower_is_better: bool) -> str:
    """Which other arms the leader's interval is clear of, and which it overlaps (no evidence of a difference)."""
    def clear(arm: str) -> bool:
        if lower_is_better:
            return intervals[best][2] < intervals[arm][1]
        return intervals[best][1] > intervals[arm][2]
    others = [a for a in intervals if a != best]
    apart = [a for a in others if clear(a)]
    overlapping = [a for a in others if not clear(a)]
    if not overlapping:
        return 'its interval is clear of the others\''
    if not apart:
        return 'the intervals overlap, so this is no evidence of a difference'
    return (f'its interval is clear of {" and ".join(apart)}, but overlaps {" and ".join(overlapping)} '
            '(no evidence of a difference there)')


def _at_budget(rows: dict[str, dict], args: argparse.Namespace, rng: np.random.Generator) -> str:
    """Mean success at the budget over all seeds (a seed stopped at 80% held there), once every seed is there."""
    means = {arm: mean_success_at(row['curves'].values(), args.steps, rng) for arm, row in rows.items()}
    if None in means.values():
        return f'Success at {args.steps // 1000:g}k env steps: not every seed is there yet.'
    best = max(means, key=lambda a: means[a][0])
    listed = ', '.join(f'{arm} {m:.2f} ({low:.2f}-{high:.2f})' for arm, (m, low, high) in means.items())
    return (f'Mean success at {args.steps // 1000:g}k env steps: {listed}; {best} is highest, '
            + _clear_of_others(best, means, lower_is_better=False) + '.')


def cell(entry: dict, seeds: int) -> str:
    if entry['median_ci'] is None:
        return '-'
    median, low, high = entry['median_ci']
    return f'{median:.0f} ({low:.0f}-{high:.0f}), {entry["reached"]}/{seeds} reached'


def mean_success_at(curves, step: int, rng: np.random.Generator) -> tuple[float, float, float] | None:
    """Mean success over the seeds at one step (bootstrap 95% interval), a seed stopped at 80% held at its last
    rate; None until every seed has got there."""
    rates = [held_at_stop(c, [step]).get(step) for c in curves]
    return None if None in rates else median_interval(rates, rng, statistic=np.mean)


def success_by_step(summary: dict, args: argparse.Namespace) -> list[str]:
    """A markdown table: per arm and task, mean success over seeds at every other evaluation step."""
    rng = np.random.default_rng(1)
    steps = list(range(0, args.steps + 1, 2 * args.eval_every))
    lines = ['| arm | task | ' + ' | '.join(f'{s // 1000:g}k' for s in steps) + ' |', '|---|---|' + '---|' * len(steps)]
    for key, row in summary['table'].items():
        means = [mean_success_at(row['curves'].values(), step, rng) for step in steps]
        cells = ['' if m is None else f'{m[0]:.2f} ({m[1]:.2f}-{m[2]:.2f})' for m in means]
        lines.append(f'| {" | ".join(key.split("/"))} | ' + ' | '.join(cells) + ' |')
    return lines


def report(args: argparse.Namespace) -> None:
    summary = summarize(args)
    lines = ['# LAMP vs novelty-only vs scratch: RL finetuning from each start', '',
             f'Made by `python experiments/lamp_vs_scratch.py {" ".join(sys.argv[1:])}`.', '',
             'Pretraining budget (env steps, one seed each): '
             + ', '.join(f'{arm} {steps}' for arm, steps in summary['pretrain_steps'].items())
             + f'. Finetuning: {args.demos} expert '
             f'demos in the demo buffer, success reward ending the episode, budget {args.steps} env steps, '
             f'{args.episode_steps}-step episodes, cameras {", ".join(args.cameras)}; evaluation every '
             f'{args.eval_every} env steps on the same {args.eval_episodes} held-out scenes (deterministic policy). '
             'Steps to a rate: median over finished seeds (bootstrap 95% interval); a seed that never reached it '
             f'counts as {args.steps}. The plot (lamp_vs_scratch.png): every seed faint, the mean bold; a seed '
             'stopped at 80% counts at its last rate after it stopped.', '',
             '| arm | task | seeds finished | env steps to 50% | env steps to 80% |', '|---|---|---|---|---|']
    for key, row in summary['table'].items():
        arm, task = key.split('/')
        n = len(row['seeds_finished'])
        lines.append(f'| {arm} | {task} | {n}/{len(args.seeds)} | {cell(row["to_50%"], n)} | '
                     f'{cell(row["to_80%"], n)} |')
    rewards = reward_lines(summary)
    if rewards:
        lines += ['', 'The pretraining reward per env step, each term as weighted into it (r_VLM from the replay, '
                  'novelty as the updates logged it, second half of the run):', '', *rewards]
    lines += ['', '## Success by env steps', '', 'Mean success over the seeds (bootstrap 95% interval), at every '
              'other evaluation; a seed stopped at 80% counts at its last rate; blank: not every seed has got there '
              'yet.', '', *success_by_step(summary, args), '', '## Conclusion', '', conclusion(summary, args)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / 'lamp_vs_scratch.md', '\n'.join(lines) + '\n')
    settings = {k: str(v) for k, v in vars(args).items()}
    atomic_write_text(RESULTS / 'lamp_vs_scratch.json', json.dumps({'settings': settings, **summary}, indent=1) + '\n')
    plot(summary, args, RESULTS / 'lamp_vs_scratch.png')
    print('\n'.join(lines))


def held_at_stop(points: list[tuple[int, float]], steps: list[int]) -> dict[int, float]:
    """A run's evaluations by step; a run stopped at its first evaluation >= 80% keeps that rate at later steps
    (it was stopped because the table needs no more of it), so seeds that got there early do not end the mean."""
    held = dict(points)
    if points and points[-1][1] >= max(RATES):
        held.update({s: points[-1][1] for s in steps if s > points[-1][0]})
    return held


def mean_curve(curves: list[list[tuple[int, float]]], until: int | None = None) -> tuple[list[int], list[float]]:
    """The seeds' mean success at every step all of them have (a seed stopped at 80% held at its last rate, up to
    `until` where given: the budget, so a curve whose seeds all stopped early still runs to the end)."""
    steps = sorted(set.union(*[{s for s, _ in c} for c in curves], {until} if until is not None else set()))
    held = [held_at_stop(c, steps) for c in curves]
    steps = [s for s in steps if all(s in h for h in held)]
    return steps, [float(np.mean([h[s] for h in held])) for s in steps]


def plot(summary: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, axes = plt.subplots(1, len(args.tasks), figsize=(4.5 * len(args.tasks), 3.5), squeeze=False)
    colours = {'scratch': 'tab:blue', 'novelty': 'tab:green', 'lamp': 'tab:red'}
    for ax, task in zip(axes[0], args.tasks):
        for arm in args.arms:
            curves = [c for c in summary['table'][f'{arm}/{task}']['curves'].values() if c]
            for c in curves:
                ax.plot(*zip(*c), color=colours[arm], alpha=0.25, lw=1)
            if curves:
                ax.plot(*mean_curve(curves, args.steps), color=colours[arm], lw=2.5, label=f'{arm} (mean of {len(curves)})')
        ax.set(title=task, xlabel='env steps (finetuning)', ylabel='success', ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', type=Path, default=Path('runs/lamp_vs_scratch'), help='where every run goes')
    p.add_argument('--arms', nargs='+', choices=ARMS, default=list(ARMS))
    p.add_argument('--tasks', nargs='+', default=['push_button', 'close_microwave', 'pick_up_cup'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    p.add_argument('--demos', type=int, default=5, help="expert demos in finetuning's demo buffer (default 5)")
    p.add_argument('--steps', type=int, default=20_000, help='finetuning env steps per run (default 20000)')
    p.add_argument('--pretrain-steps', type=int, default=100_000, help='pretraining env steps (default 100000)')
    p.add_argument('--episode-steps', type=int, default=50, help='finetuning episode length (default 50)')
    p.add_argument('--eval-every', type=int, default=2500)
    p.add_argument('--eval-episodes', type=int, default=30)
    p.add_argument('--cameras', nargs='+', default=['front', 'wrist'])
    p.add_argument('--reward-checkpoint', type=Path, default=None,
                   help='an R3M checkpoint (official layout) instead of training the in-domain one')
    p.add_argument('--preset', default='cpu', choices=('cpu', 'debug', 'paper'),
                   help="lamp-train's preset of every run (debug: a quick check of the pipeline)")
    p.add_argument('--parallel', type=int, default=2, help='runs at once (default 2: one per core)')
    p.add_argument('--device', default='cpu',
                   help='torch device of every training run and of the reward model\'s training, e.g. cuda '
                        '(default cpu)')
    p.add_argument('--report-only', action='store_true', help='train nothing: tabulate the runs as they are')
    args = p.parse_args(argv)
    args.runs = args.runs.expanduser().resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.report_only:
        run_jobs(jobs_for(args, reward_checkpoint(args)), args.runs, args.parallel)
    report(args)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
