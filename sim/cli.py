"""lamp-sim: look at the simulated tasks and check that their scripted experts solve them.

    lamp-sim view --task push_button [--seed 0] [--out sim_views]
        a video (.mp4) and a contact sheet (.png) of a random and an expert episode
    lamp-sim eval-expert --task all --episodes 50
        the experts' success table (markdown)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import sim
from lamp_ros.fileio import atomic_write_bytes
from sim.experts import EpisodeResult, make_expert, run_episode

SHEET_FRAMES = 8


def _frame(observation: dict[str, np.ndarray]) -> np.ndarray:
    return np.hstack([observation['image_front'], observation['image_wrist']])


def record_episode(env, policy: str, seed: int) -> tuple[list[np.ndarray], EpisodeResult]:
    """Frames (front | wrist, RGB) of one episode played by 'random' actions or the 'expert'."""
    frames: list[np.ndarray] = []
    task = env.unwrapped.task_name
    if policy == 'expert':
        result = run_episode(env, make_expert(task), seed=seed, on_step=lambda obs, r, info: frames.append(_frame(obs)))
        return frames, result
    observation, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    frames.append(_frame(observation))
    total, first_success, step, done = 0.0, None, 0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        step, total = step + 1, total + reward
        first_success = first_success or (step if info['success'] else None)
        frames.append(_frame(observation))
        done = terminated or truncated
    return frames, EpisodeResult(first_success is not None, first_success, total, info['instruction'])


def _labelled(frame: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((14, frame.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, frame])


def _png(image_rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError('PNG encoding failed')
    return encoded.tobytes()


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """MP4 written next to `path` and renamed into place (readers never see half a file)."""
    height, width = frames[0].shape[:2]
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.mp4', dir=path.parent)
    os.close(fd)
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        os.unlink(tmp)
        raise RuntimeError('OpenCV cannot write MP4 video here')
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(tmp, path)


def view(task: str, seed: int, out: Path, image_size: int, randomize: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    env = sim.make(task, image_size=image_size, randomize=randomize)
    episodes = {}
    for policy in tqdm(('random', 'expert'), desc=f'{task} episodes', unit='episode'):
        frames, result = record_episode(env, policy, seed)
        label = f'{policy}: "{result.instruction}" success={result.success}'
        episodes[policy] = ([_labelled(f, label) for f in frames], result)
    env.close()
    stem = out / f'{task}_seed{seed}'
    video = stem.with_suffix('.mp4')
    write_video(video, episodes['random'][0] + episodes['expert'][0], fps=10.0)
    rows = []
    for frames, _ in episodes.values():
        picks = np.linspace(0, len(frames) - 1, SHEET_FRAMES).round().astype(int)
        rows.append(np.hstack([frames[i] for i in picks]))
    sheet = stem.with_suffix('.png')
    atomic_write_bytes(sheet, _png(np.vstack(rows)))
    for policy, (_, result) in episodes.items():
        print(f'{task} {policy}: success={result.success} return={result.total_reward:.1f} '
              f'instruction="{result.instruction}"')
    return [video, sheet]


def evaluate_experts(tasks: Sequence[str], episodes: int, first_seed: int, image_size: int) -> list[dict]:
    rows = []
    for task in tasks:
        env = sim.make(task, image_size=image_size)
        expert = make_expert(task)
        results = [run_episode(env, expert, seed=first_seed + i)
                   for i in tqdm(range(episodes), desc=task, unit='episode')]
        env.close()
        steps = [r.steps_to_success for r in results if r.steps_to_success is not None]
        rows.append({'task': task, 'episodes': episodes, 'successes': sum(r.success for r in results),
                     'mean_steps': float(np.mean(steps)) if steps else float('nan'),
                     'mean_return': float(np.mean([r.total_reward for r in results]))})
    return rows


def format_table(rows: list[dict], first_seed: int) -> str:
    lines = ['| task | seeds | success | rate | steps to success (mean) | return (mean) |',
             '|---|---|---|---|---|---|']
    for row in rows:
        last = first_seed + row['episodes'] - 1
        lines.append(f"| {row['task']} | {first_seed}-{last} | {row['successes']}/{row['episodes']} | "
                     f"{100 * row['successes'] / row['episodes']:.0f}% | {row['mean_steps']:.1f} | "
                     f"{row['mean_return']:.1f} |")
    return '\n'.join(lines)


def _tasks(names: list[str]) -> list[str]:
    if names == ['all']:
        return list(sim.DOWNSTREAM_TASK_NAMES)
    for name in names:
        sim.env_id(name)                              # raises with the list of known tasks
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='lamp-sim', description=__doc__.splitlines()[0],
                                     epilog='\n'.join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    task_help = f'task: {", ".join(sim.ENV_IDS)}'

    view_parser = commands.add_parser('view', help='video and contact sheet of a random and an expert episode')
    view_parser.add_argument('--task', required=True, help=task_help)
    view_parser.add_argument('--seed', type=int, default=0)
    view_parser.add_argument('--out', type=Path, default=Path('sim_views'), help='output folder (default: sim_views)')
    view_parser.add_argument('--image-size', type=int, default=128)
    view_parser.add_argument('--no-randomize', action='store_true', help='turn visual randomization off')

    eval_parser = commands.add_parser('eval-expert', help="success table of the scripted experts")
    eval_parser.add_argument('--task', nargs='+', default=['all'], help=f'{task_help}, or all (default)')
    eval_parser.add_argument('--episodes', type=int, default=50, help='episodes (seeds) per task (default: 50)')
    eval_parser.add_argument('--seed', type=int, default=0, help='first seed (default: 0)')
    eval_parser.add_argument('--image-size', type=int, default=64, help='rendered size (default: 64, faster)')

    args = parser.parse_args(argv)
    try:
        if args.command == 'view':
            sim.env_id(args.task)
            for path in view(args.task, args.seed, args.out, args.image_size, not args.no_randomize):
                print(path)
        else:
            if args.episodes < 1:
                raise ValueError(f'--episodes must be >= 1, got {args.episodes}')
            rows = evaluate_experts(_tasks(args.task), args.episodes, args.seed, args.image_size)
            print(format_table(rows, args.seed))
    except (ValueError, FileNotFoundError) as error:
        print(f'lamp-sim: error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
