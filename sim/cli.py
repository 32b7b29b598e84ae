"""lamp-sim: look at the simulated tasks and check that their scripted experts solve them.

    lamp-sim view --task push_button [--seed 0] [--out sim_views]
        a video (.mp4) and a contact sheet (.png) of a random and an expert episode
    lamp-sim eval-expert --task all --episodes 50
        the experts' success table (markdown)
    lamp-sim eval-bundle BUNDLE [--task T|all] [--instruction TEXT] [--episodes N] [--seed-base S]
                                [--workers W] [--json] [--video DIR]
        an exported policy bundle, run by the robot's ONNX runtime on held-out randomized scenes:
        success table (markdown, or one JSON object)
    lamp-sim record-demos --tasks all --episodes 30 --out demos/
        scripted expert episodes saved as episode files (models/episodes.py): labeled videos for
        `lamp-models finetune-reward`
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import sim
from lamp_ros.fileio import atomic_write_bytes
from lamp_ros.scale.cluster import ClusterUnreachable
from lamp_ros.video import write_video
from models.episodes import Episode, save_episode
from sim import evaluation
from sim.experts import EpisodeResult, make_expert, run_episode

SHEET_FRAMES = 8


def _frame(env, observation: dict[str, np.ndarray]) -> np.ndarray:
    return env.unwrapped.view_frame(observation)


def record_episode(env, policy: str, seed: int) -> tuple[list[np.ndarray], EpisodeResult]:
    """Frames (front | wrist at VIEW_PX | the agent's front image, RGB) of one episode played by 'random' actions
    or the 'expert'."""
    frames: list[np.ndarray] = []
    task = env.unwrapped.task_name
    if policy == 'expert':
        result = run_episode(env, make_expert(task), seed=seed, on_step=lambda obs, r, info: frames.append(_frame(env, obs)))
        return frames, result
    observation, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    frames.append(_frame(env, observation))
    total, first_success, step, done = 0.0, None, 0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        step, total = step + 1, total + reward
        first_success = first_success or (step if info['success'] else None)
        frames.append(_frame(env, observation))
        done = terminated or truncated
    return frames, EpisodeResult(first_success is not None, first_success, total, info['instruction'])


def _labelled(frame: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((24, frame.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, frame])


def _png(image_rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError('PNG encoding failed')
    return encoded.tobytes()


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
        rows.append(np.hstack([frames[i][::2, ::2] for i in picks]))          # half size: a sheet to glance at
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


def eval_bundle(args: argparse.Namespace) -> int:
    """`lamp-sim eval-bundle`: check everything before starting workers, so bad input costs no episode."""
    for name in ('episodes', 'workers'):
        if getattr(args, name) < 1:
            raise ValueError(f'--{name} must be >= 1, got {getattr(args, name)}')
    if args.seed_base < 0:
        raise ValueError(f'--seed-base must be >= 0, got {args.seed_base}')
    tasks = evaluation.check_tasks(args.task)
    manifest = evaluation.check_bundle(args.bundle, args.instruction)
    untrained = evaluation.untrained_tasks(manifest, tasks)
    if untrained:
        print(f'note: bundle trained for {list(manifest.tasks)}; evaluating {", ".join(untrained)} anyway',
              file=sys.stderr)
    if args.video:
        args.video.mkdir(parents=True, exist_ok=True)
    workers = args.workers
    if args.ray_address is not None:
        from lamp_ros.scale.cluster import connect
        cluster = connect(args.ray_address)
        workers = max(workers, int(cluster['cpus']))              # one Ray task per CPU of the cluster
        print(f'Ray: {cluster["nodes"]} node(s), {cluster["cpus"]:g} CPUs: {workers} tasks', file=sys.stderr)
    with tqdm(total=len(tasks) * args.episodes, desc='episodes', unit='episode', disable=None) as bar:
        episodes = evaluation.evaluate(args.bundle, manifest, tasks, args.episodes, args.seed_base, workers,
                                       args.instruction, args.video, on_episode=lambda e: bar.update(),
                                       on_ray=args.ray_address is not None)
    if args.json:
        print(json.dumps(evaluation.report_json(episodes, tasks, manifest, args.bundle, args.instruction,
                                                args.seed_base)))
        return 0
    last = args.seed_base + args.episodes - 1
    instruction = f'"{args.instruction}"' if args.instruction else "each task's own"
    print(f'{manifest.model_version} ({args.bundle}): {args.episodes} held-out scene(s) per task, '
          f'seeds {args.seed_base}-{last}, instruction: {instruction}\n')
    print(evaluation.format_table(evaluation.summarize(episodes, tasks)))
    return 0


def record_demos(tasks: Sequence[str], episodes: int, out: Path, image_size: int, seed: int, after_success: int,
                 max_steps: int, paraphrase: bool, progress: bool = True) -> dict[str, int]:
    """Scripted expert episodes (sim.experts) as episode files out/<task>_<seed>.npz; existing files are kept.

    An episode ends `after_success` steps after its first success (the video shows the task being done, not
    a long still ending), or after `max_steps`. Paraphrased task phrases (pretraining: templates and synonyms)
    give the instructions variety; `task` labels the paraphrases of one task.
    """
    out.mkdir(parents=True, exist_ok=True)
    counts = {'recorded': 0, 'kept': 0, 'successes': 0}
    with tqdm(total=len(tasks) * episodes, desc='record demos', unit='episode', disable=not progress) as bar:
        for task in tasks:
            env = sim.make(task, image_size=image_size, paraphrase_instructions=paraphrase)
            expert = make_expert(task)
            for episode_seed in range(seed, seed + episodes):
                path = out / f'{task}_{episode_seed:05d}.npz'
                if path.exists():
                    counts['kept'] += 1
                else:
                    episode = _expert_episode(env, expert, task, episode_seed, after_success, max_steps)
                    save_episode(path, episode)
                    counts['recorded'] += 1
                    counts['successes'] += int(episode.success)
                bar.update()
            env.close()
    return counts


def _expert_episode(env, expert, task: str, seed: int, after_success: int, max_steps: int) -> Episode:
    observation, info = env.reset(seed=seed)
    expert.reset()
    scene = env.unwrapped.scene
    front, wrist, state = [observation['image_front']], [observation['image_wrist']], [observation['state']]
    rewards, actions = [scene.reward()], []
    first_success = None
    for step in range(1, max_steps + 1):
        action = expert.act(scene)
        observation, reward, terminated, truncated, info = env.step(action)
        actions.append(info['applied_action'])       # what the arm did: the robot recorder's action language
        front.append(observation['image_front'])
        wrist.append(observation['image_wrist'])
        state.append(observation['state'])
        rewards.append(reward)
        if info['success'] and first_success is None:
            first_success = step
        if terminated or truncated or (first_success is not None and step - first_success >= after_success):
            break
    meta = {'recorder': 'lamp-sim record-demos', 'seed': seed, 'state_keys': list(sim.STATE_KEYS),
            'action': 'applied (speed- and acceleration-limited, as control/applied_action)'}
    return Episode(image_front=np.stack(front), instruction=info['instruction'], success=first_success is not None,
                   task=task, image_wrist=np.stack(wrist), state=np.stack(state).astype(np.float32),
                   action=np.stack(actions).astype(np.float32), reward=np.array(rewards, np.float32),
                   meta=json.dumps(meta))


def cmd_record_demos(args: argparse.Namespace) -> int:
    """`lamp-sim record-demos`: 'all' (the downstream tasks) may be given beside other names, e.g. pretrain."""
    tasks = list(dict.fromkeys(t for name in args.tasks
                               for t in (sim.DOWNSTREAM_TASK_NAMES if name == 'all' else (name,))))
    for task in tasks:                                # snake_case names only: they name the files
        if task not in sim.ENV_IDS:
            raise ValueError(f'unknown task {task!r}; choose from {", ".join(sim.ENV_IDS)} or all')
    for name in ('episodes', 'image_size', 'max_steps'):
        if getattr(args, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    counts = record_demos(tasks, args.episodes, args.out, args.image_size, args.seed, args.after_success,
                          args.max_steps, not args.no_paraphrase, progress=not args.quiet)
    print(f'{args.out}: recorded {counts["recorded"]} episodes ({counts["successes"]} successful), '
          f'kept {counts["kept"]} already there; tasks {", ".join(tasks)}, seeds {args.seed}..'
          f'{args.seed + args.episodes - 1}, {args.image_size}x{args.image_size}')
    return 0


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

    bundle_parser = commands.add_parser(
        'eval-bundle', help="success table of an exported policy bundle (the robot's ONNX runtime)",
        description='Run an exported policy bundle with models.runtime.PolicyRuntime (onnxruntime, as the ROS '
                    'policy node does; no torch) on held-out randomized scenes, front camera at the '
                    "bundle's image size, until success or 150 steps.")
    bundle_parser.add_argument('bundle', type=Path, metavar='BUNDLE', help='policy bundle directory (lamp-export)')
    bundle_parser.add_argument('--task', nargs='+', default=['all'], metavar='T',
                               help=f'{", ".join(sim.DOWNSTREAM_TASK_NAMES)}, or all (default)')
    bundle_parser.add_argument('--instruction', metavar='TEXT',
                               help="instruction for every episode (default: each task's own phrase)")
    bundle_parser.add_argument('--episodes', type=int, default=50, metavar='N',
                               help='episodes (seeds) per task (default: 50)')
    bundle_parser.add_argument('--seed-base', type=int, default=evaluation.HELD_OUT_SEED_BASE, metavar='S',
                               help=f'first seed (default: {evaluation.HELD_OUT_SEED_BASE}: scenes no training '
                                    'episode uses, the ones training evaluates on)')
    bundle_parser.add_argument('--workers', type=int, default=2, metavar='W', help='worker processes (default: 2)')
    bundle_parser.add_argument('--ray-address', metavar='ADDR', default=None,
                               help='spread the episodes over a Ray cluster as Ray tasks (one per CPU): local '
                                    '(Ray on this machine), auto, HOST:PORT or ray://HOST:PORT; the results equal '
                                    "a local run's (each episode depends only on its task and seed)")
    bundle_parser.add_argument('--json', action='store_true', help='print one JSON object instead of the table')
    bundle_parser.add_argument('--video', type=Path, metavar='DIR',
                               help='write every episode as DIR/<task>_seed<seed>.mp4 (front camera)')

    record = commands.add_parser(
        'record-demos', help='record scripted expert episodes (labeled videos)',
        description='Play the scripted experts (sim.experts) and save each episode as an episode file '
                    '(models/episodes.py) with its instruction: the in-domain labeled videos for '
                    '`lamp-models finetune-reward`. Files already there are kept.')
    record.add_argument('--tasks', nargs='+', default=['all'],
                        help='task names (push_button, ..., pretrain) or all = the five downstream tasks')
    record.add_argument('--episodes', type=int, required=True, help='episodes per task (seeds --seed, --seed+1, ...)')
    record.add_argument('--out', type=Path, required=True, help='directory of episode files')
    record.add_argument('--image-size', type=int, default=128, help='camera images, square (default 128, as LAMP)')
    record.add_argument('--seed', type=int, default=0, help='first seed (default 0)')
    record.add_argument('--after-success', type=int, default=10,
                        help='steps recorded after the first success (default 10)')
    record.add_argument('--max-steps', type=int, default=150, help='longest episode, steps (default 150)')
    record.add_argument('--no-paraphrase', action='store_true',
                        help="LAMP's fixed task phrase instead of a random paraphrase per episode")
    record.add_argument('--quiet', action='store_true', help='no progress bar')

    args = parser.parse_args(argv)
    try:
        if args.command == 'eval-bundle':
            return eval_bundle(args)
        if args.command == 'record-demos':
            return cmd_record_demos(args)
        if args.command == 'view':
            sim.env_id(args.task)
            for path in view(args.task, args.seed, args.out, args.image_size, not args.no_randomize):
                print(path)
        else:
            if args.episodes < 1:
                raise ValueError(f'--episodes must be >= 1, got {args.episodes}')
            rows = evaluate_experts(_tasks(args.task), args.episodes, args.seed, args.image_size)
            print(format_table(rows, args.seed))
    except (ValueError, FileNotFoundError) as error:          # bad input (BundleError is a ValueError)
        print(f'lamp-sim: error: {error}', file=sys.stderr)
        return 2
    except (evaluation.WorkerError, ClusterUnreachable) as error:
        print(f'lamp-sim: error: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
