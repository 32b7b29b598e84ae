"""Do the pretrained encoders see what the tasks need? A linear probe of frozen features (not a test).

lamp_vs_scratch finetunes from three starts: a random agent (scratch), novelty-only and LAMP pretraining. This
asks what their image encoders carry before finetuning. Frames of each task's held-out evaluation scenes, played
by the task's scripted expert with action noise (so the gripper is seen everywhere between its start and the
goal), are encoded as the agent sees them (front + wrist, no augmentation); a ridge regression from the features
predicts, per task, where the task's focus point is (in the arm's box) and its offset from the gripper (what the
policy must find: sim/privileged.py). R^2 (mean over x, y, z) on episodes the regression never saw, over 4 folds
of whole episodes (scenes), mean +- spread across the folds.

    python experiments/pretraining_probe.py --runs runs/lvs [--episodes 100] [--run NAME=RUN_DIR ...]

`--run` adds any other run's encoder (e.g. a finetuned one) beside the three starts.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lamp_ros.fileio import atomic_write_text  # noqa: E402
from sim.experts import make_expert, run_episode  # noqa: E402
from sim.privileged import privileged_state  # noqa: E402
from training.agent import DrQAgent  # noqa: E402
from training.agent.networks import images_to_input  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.evaluate import make_env  # noqa: E402
from training.run import EVAL_SEED_BASE  # noqa: E402
from training.runs import load_agent  # noqa: E402

TASKS = ('push_button', 'close_microwave', 'pick_up_cup')     # lamp_vs_scratch's
EPISODE_STEPS = 50
ACTION_NOISE = 0.5
ALPHAS = tuple(10.0 ** k for k in range(-3, 7))
FOLDS = 4
TARGETS = {'focus point': slice(0, 3), 'offset to the gripper': slice(3, 6)}    # sim/privileged.py's layout
RESULTS = Path(__file__).resolve().parent / 'results'


@dataclass
class Frames:
    """One task's probe data: images per camera [N, H, W, 3], privileged targets [N, 6], episode index [N]."""
    images: dict[str, np.ndarray]
    targets: np.ndarray
    episode: np.ndarray


def collect(task: str, config: TrainConfig, episodes: int, seed: int) -> Frames:
    """Noisy expert episodes on the held-out evaluation scenes; every frame with its privileged state."""
    env = make_env(task, replace(config.env, episode_steps=EPISODE_STEPS))
    rng = np.random.default_rng(seed)
    images: dict[str, list[np.ndarray]] = {c: [] for c in config.agent.cameras}
    targets, episode = [], []
    for k in range(episodes):
        def on_step(obs: dict, _reward: float, _info: dict, k: int = k) -> None:
            for camera in images:
                images[camera].append(obs[f'image_{camera}'])
            targets.append(privileged_state(env.unwrapped.scene)[:6])
            episode.append(k)

        run_episode(env, make_expert(task), seed=EVAL_SEED_BASE + k, on_step=on_step, action_noise=ACTION_NOISE,
                    rng=rng)
    env.close()
    return Frames({c: np.stack(v) for c, v in images.items()}, np.stack(targets), np.array(episode))


@torch.no_grad()
def features(agent: DrQAgent, frames: Frames, batch: int = 256) -> np.ndarray:
    """The encoder's output for every frame (what the actor and critic read), float64 [N, D]."""
    out = []
    for start in range(0, len(frames.episode), batch):
        images = [torch.from_numpy(frames.images[c][start:start + batch]) for c in agent.config.cameras]
        out.append(agent.encoder(images_to_input(images)).double().numpy())
    return np.concatenate(out)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Weights [D + 1, T] of min |[x 1] w - y|^2 + alpha |w without bias|^2."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    penalty = alpha * np.eye(xb.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + penalty, xb.T @ y)


def r2(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """R^2 of the prediction, averaged over the target's dimensions."""
    prediction = np.hstack([x, np.ones((len(x), 1))]) @ w
    residual = ((y - prediction) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - residual / np.maximum(total, 1e-12)))


def probe(x: np.ndarray, y: np.ndarray, episode: np.ndarray, folds: int = FOLDS) -> tuple[float, float]:
    """Held-out R^2, mean and spread over `folds` folds of whole episodes: each fold scored by a ridge fitted on
    the others, with its strength chosen on the next fold. Features centred and scaled by one number (their
    overall spread where fitted), so that no near-constant feature is blown up."""
    fold = episode * folds // (episode.max() + 1)
    scores = []
    for f in range(folds):
        score, choose = fold == f, fold == (f + 1) % folds
        fit = ~score & ~choose
        mean = x[fit].mean(axis=0)
        z = (x - mean) / (np.sqrt(((x[fit] - mean) ** 2).sum(axis=1).mean()) + 1e-12)
        best = max(ALPHAS, key=lambda a: r2(z[choose], y[choose], ridge(z[fit], y[fit], a)))
        scores.append(r2(z[score], y[score], ridge(z[~score], y[~score], best)))
    return float(np.mean(scores)), float(np.std(scores))


def encoders(runs: Path, extra: list[str]) -> dict[str, DrQAgent]:
    """The three starts of lamp_vs_scratch (scratch: a fresh agent of the pretraining architecture), + extras."""
    novelty, _, _, _ = load_agent(runs / 'pretrain_novelty')
    lamp, config, _, _ = load_agent(runs / 'pretrain_lamp')
    agents = {'scratch (random)': DrQAgent(config.agent, seed=0), 'novelty': novelty, 'lamp': lamp}
    for item in extra:
        name, _, run_dir = item.partition('=')
        agents[name] = load_agent(Path(run_dir))[0]
    return agents


def table(scores: dict[str, dict[str, dict[str, tuple[float, float]]]]) -> list[str]:
    """Markdown rows: encoder x task, one column per target."""
    rows = ['| encoder | task | ' + ' | '.join(f'R^2 {t}' for t in TARGETS) + ' |',
            '|---|---|' + '---|' * len(TARGETS)]
    for name, by_task in scores.items():
        for task, by_target in by_task.items():
            rows.append(f'| {name} | {task} | ' + ' | '.join('{:.2f} +- {:.2f}'.format(*by_target[t]) for t in TARGETS) + ' |')
    return rows


def summary(scores: dict[str, dict[str, dict[str, tuple[float, float]]]]) -> list[str]:
    """One line per target: each encoder's R^2 averaged over the tasks."""
    return [f'Mean over the tasks, {target}: ' + ', '.join(
        f'{name} {np.mean([by_task[task][target][0] for task in by_task]):.2f}' for name, by_task in scores.items())
        for target in TARGETS]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', type=Path, required=True, help="lamp_vs_scratch's run directory")
    p.add_argument('--episodes', type=int, default=100, help='expert episodes per task (default 100)')
    p.add_argument('--run', action='append', default=[], metavar='NAME=RUN_DIR', help='another encoder to probe')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if args.episodes < 2 * FOLDS:
        p.error(f'--episodes must be at least {2 * FOLDS} (two per fold)')
    torch.set_num_threads(1)
    agents = encoders(args.runs, args.run)
    config = load_agent(args.runs / 'pretrain_lamp')[1]
    scores: dict[str, dict[str, dict[str, tuple[float, float]]]] = {name: {} for name in agents}
    for task in TASKS:
        frames = collect(task, config, args.episodes, args.seed)
        for name, agent in agents.items():
            x = features(agent, frames)
            scores[name][task] = {t: probe(x, frames.targets[:, s], frames.episode) for t, s in TARGETS.items()}
        print(f'{task}: {len(frames.episode)} frames probed', flush=True)
    command = shlex.join(['python', 'experiments/pretraining_probe.py', *(argv if argv is not None else sys.argv[1:])])
    lines = ["# Linear probe of the starts' frozen encoders", '', f'Made by `{command}`.', '',
             f'{args.episodes} noisy expert episodes per task on the held-out evaluation scenes ({EPISODE_STEPS} '
             'steps, front + wrist cameras); ridge regression from the frozen encoder features to the task\'s focus '
             'point and its offset from the gripper; R^2 (mean over x, y, z) on unseen episodes, mean +- spread '
             f'over {FOLDS} folds. Method: the docstring of experiments/pretraining_probe.py.', '',
             *table(scores), '', *summary(scores)]
    print('\n'.join(lines[6:]))
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / 'pretraining_probe.md', '\n'.join(lines) + '\n')
    atomic_write_text(RESULTS / 'pretraining_probe.json', json.dumps(scores, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
