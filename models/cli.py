"""`lamp-models`: reward model tools for the workstation.

    lamp-models score --first A.png --frame B.png --instruction "push the button"   # sanity-check a reward model
    lamp-models fetch r3m --size 50 [--dest DIR]                                     # official R3M weights
    lamp-models export-onnx [--checkpoint DIR] [--out DIR]                           # R3M for the robot (no torch)
    lamp-models finetune-reward --size 18 --episodes demos/ --out DIR                # in-domain R3M reward
    lamp-models train-classifier --episodes demos/ --out DIR                         # success classifier (ONNX)

Labeled videos for finetune-reward come from the simulator: `lamp-sim record-demos` (sim/cli.py).

Each command that needs weights says exactly which file to place where when they are missing (exit code 2).
Commands import torch only when they run, so `--help` is instant.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from models.r3m.layout import DEFAULT_SIZE, SIZES, CheckpointError, default_checkpoint_dir, default_onnx_dir
from models.reward_model import RewardModel, WeightsMissing

EXIT_WEIGHTS_MISSING = 2
SCORE_MODELS = ('r3m', 'r3m-onnx', 'clip', 'classifier')


def default_classifier_dir() -> Path:
    """Where `lamp-models train-classifier` writes by default (what the reward node's `classifier` reads)."""
    from lamp_ros.paths import data_dir
    return data_dir() / 'weights' / 'success_classifier'


def read_rgb(path: Path) -> np.ndarray:
    """An image file -> uint8 [H, W, 3] RGB (OpenCV reads BGR)."""
    import cv2
    if not Path(path).is_file():
        raise ValueError(f'{path}: no such file')
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'{path}: not a readable image file')
    return np.ascontiguousarray(image[:, :, ::-1])


def load_reward_model(kind: str, checkpoint: Path | None, device: str, threads: int) -> RewardModel:
    """The reward model `kind` from `checkpoint` (its default directory when None); WeightsMissing if absent."""
    if kind == 'r3m':
        from models.r3m.reward import R3MReward
        return R3MReward.load(checkpoint or default_checkpoint_dir(DEFAULT_SIZE), device=device)
    if kind == 'r3m-onnx':
        from models.r3m.runtime import OnnxR3MReward
        return OnnxR3MReward.load(checkpoint or default_onnx_dir(DEFAULT_SIZE), threads=threads)
    if kind == 'clip':
        from models.clip_reward import ClipReward, default_checkpoint_dir as clip_default_dir
        return ClipReward.load(checkpoint or clip_default_dir(), device=device)
    if kind == 'classifier':
        from models.success_classifier import SuccessClassifier
        return SuccessClassifier.load(checkpoint or default_classifier_dir(), threads=threads)
    raise ValueError(f'unknown reward model {kind!r} (one of {SCORE_MODELS})')


def cmd_score(args: argparse.Namespace) -> int:
    if args.model == 'r3m-onnx' and args.device != 'cpu':
        raise Refused('--model r3m-onnx runs on the CPU (onnxruntime); leave --device at cpu')
    with refusing(ValueError):
        first = read_rgb(args.first)
        frames = [read_rgb(p) for p in args.frame]
    model = load_reward_model(args.model, args.checkpoint, args.device, args.threads)
    first_embedding = model.embed_images(first[None])
    frame_embeddings = np.concatenate([model.embed_images(f[None]) for f in frames])  # sizes may differ per file
    instructions = model.embed_instructions(args.instruction)
    print(f'model {model.name}; first frame {args.first} ({first.shape[1]}x{first.shape[0]}), scored at the size given')
    print(f'{"score":>12}  frame  instruction')
    for path, embedding in zip(args.frame, frame_embeddings):
        scores = model.score(first_embedding, embedding[None], instructions)
        for text, value in zip(args.instruction, scores):
            print(f'{value:12.6f}  {path}  {text}')
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from models.bundle import sha256_file
    from models.r3m.checkpoint import load_net
    from models.r3m.fetch import fetch_r3m
    from models.text_encoder import default_vocab_path

    dest = fetch_r3m(args.size, default_vocab_path(), args.dest, timeout_s=args.timeout, progress=not args.quiet)
    net = load_net(dest)   # the structural check: R3M's keys and shapes, loaded weights_only
    print(f'R3M ResNet-{args.size} in {dest} (loads as an R3M checkpoint: ResNet-{net.config.size}, '
          f'head hidden {net.config.hidden_dim}):')
    for path in sorted(dest.iterdir()):
        if path.is_file() and not path.name.endswith('.part'):
            print(f'  {path}  {path.stat().st_size} bytes  sha256 {sha256_file(path)}')
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from models.r3m.onnx_export import export_onnx
    from models.r3m.reward import R3MReward

    checkpoint = args.checkpoint or default_checkpoint_dir(DEFAULT_SIZE)
    reward = R3MReward.load(checkpoint)
    out = args.out or default_onnx_dir(reward.net.config.size)
    manifest = export_onnx(reward, out, verify_sizes=args.verify_size, overwrite=args.overwrite)
    print(f'{manifest.name} exported to {out}; onnxruntime vs torch max abs diff: '
          + ', '.join(f'{k} {v:.2g}' for k, v in manifest.verification['max_abs_diff'].items()))
    return 0


def cmd_finetune_reward(args: argparse.Namespace) -> int:
    import json

    import torch

    from lamp_ros.fileio import atomic_write_text
    from models.episodes import iter_episodes
    from models.r3m.checkpoint import save_checkpoint
    from models.r3m.finetune import FinetuneConfig, Vocabulary, check_one_size, evaluate, finetune, videos_from_episodes
    from models.r3m.onnx_export import export_onnx
    from models.r3m.reward import R3MReward
    from models.r3m.runtime import OnnxR3MReward

    with refusing(ValueError):
        config = FinetuneConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, holdout=args.holdout,
                                train_last_stage=args.train_last_stage, reset_head=args.reset_head,
                                language_negatives=args.language_negatives, max_frames=args.max_frames,
                                include_failures=args.include_failures, seed=args.seed)
    out, onnx_out = args.out.expanduser(), args.out.expanduser().with_name(args.out.name + '_onnx')
    refuse_existing(out, onnx_out, overwrite=args.overwrite)
    torch.set_num_threads(args.threads)
    with refusing(FileNotFoundError, ValueError):
        videos, left_out = videos_from_episodes(iter_episodes(args.episodes), config)   # streamed: one in memory
        vocab = Vocabulary(videos)
        check_one_size(videos)
    reward, start = _starting_r3m(args)
    labels = sorted({v.label for v in videos})
    print(f'{len(videos)} episodes ({left_out} left out) of {len(labels)} tasks: {", ".join(labels)}; '
          f'start: {start}; training the head{" and layer4" if config.train_last_stage else ""}')
    result = finetune(reward.net, reward.embed_instructions, videos, config, calibrate=args.checkpoint is None,
                      progress=not args.quiet)
    save_checkpoint(result.net, out, reward.vocab_path, extra={'global_step': config.steps})
    loaded = R3MReward.load(out, device=args.device)               # what every loader will see
    held = [v for v in videos if v.episode_id in set(result.holdout_ids)]
    shipped = evaluate(loaded, held, vocab, config.alpha) if held else None
    export_onnx(loaded, onnx_out, verify_sizes=(int(videos[0].frames.shape[1]),), overwrite=args.overwrite)
    onnx_ranking = evaluate(OnnxR3MReward.load(onnx_out), held, vocab, config.alpha) if held else None
    report = {**result.summary(), 'start': start, 'episodes_dir': str(args.episodes), 'left_out': left_out,
              'tasks': labels, 'holdout_ids': result.holdout_ids, 'checkpoint': str(out), 'onnx': str(onnx_out),
              'holdout_saved_checkpoint': shipped.__dict__ if shipped else None,
              'holdout_onnx': onnx_ranking.__dict__ if onnx_ranking else None}
    atomic_write_text(out / 'finetune_report.json', json.dumps(report, indent=2) + '\n')
    print(f'saved {out} (R3M checkpoint layout) and {onnx_out} (ONNX, for the reward node)')
    _print_ranking(result.before, shipped, len(held))
    return 0


def _starting_r3m(args: argparse.Namespace) -> tuple[Any, str]:
    """The R3M that finetune-reward starts from (--checkpoint, or random weights of --size) and its description."""
    from models.r3m.model import R3MNet
    from models.r3m.reward import R3MReward
    from models.text_encoder import default_vocab_path

    if args.checkpoint is not None:
        reward = R3MReward.load(args.checkpoint, device=args.device)
        return reward, f'checkpoint {args.checkpoint} ({reward.name})'
    net = R3MNet.random(size=args.size, hidden_dim=args.hidden_dim, seed=args.seed)
    return (R3MReward(net, default_vocab_path(), device=args.device, name=f'r3m-resnet{args.size}-random'),
            f'random ResNet-{args.size} and random DistilBERT (no pretrained or ImageNet weights), head hidden '
            f'{args.hidden_dim}')


def _print_ranking(before: Any, shipped: Any, held: int) -> None:
    from models.r3m.finetune import RANKING_NAMES

    if shipped is None:
        print('no held-out episodes (--holdout 0): no held-out ranking')
        return
    print(f'held-out ranking, {held} episodes: before finetuning -> the saved checkpoint')
    for name, line in zip(RANKING_NAMES, shipped.lines()):
        print(f'  {getattr(before, name):6.1%} -> {line}')


def cmd_train_classifier(args: argparse.Namespace) -> int:
    import torch

    from models.episodes import iter_episodes
    from models.success_training import ClassifierConfig, export_classifier, labelled_frames, train_classifier

    out = (args.out or default_classifier_dir()).expanduser()
    refuse_existing(out, overwrite=args.overwrite)
    with refusing(FileNotFoundError, ValueError):
        config = ClassifierConfig(image_size=args.image_size, positive_frames=args.positive_frames,
                                  margin_frames=args.margin_frames, steps=args.steps, holdout=args.holdout,
                                  threshold=args.threshold, seed=args.seed)
        data = labelled_frames(iter_episodes(args.episodes), config)
    torch.set_num_threads(args.threads)
    print(f'{len(np.unique(data.episode))} episodes, {len(data.labels)} frames ({int(data.labels.sum())} '
          f'positive) of {", ".join(data.tasks)}; {config.image_size}x{config.image_size}')
    net, report = train_classifier(data, config, progress=not args.quiet)
    export_classifier(net, out, config, data.tasks, report, name=f'success-classifier@{out.name}')
    for side in ('train', 'held_out'):
        r = report[side]
        if r:
            print(f'{side:9s} {r["episodes"]} episodes, {r["frames"]} frames: accuracy {r["accuracy"]:.3f}, '
                  f'precision {r["precision"]:.3f}, recall {r["recall"]:.3f} at threshold {config.threshold}')
    print(f'saved {out} (classifier.onnx + classifier.json): reward node `model: classifier`, '
          f'`checkpoint: {out}`')
    return 0


class Refused(Exception):
    """A command's input refused before any work: main prints 'error: <why>' and exits 1."""


@contextmanager
def refusing(*errors: type[Exception]) -> Iterator[None]:
    """Inside: these errors (bad settings, missing or unreadable episodes) become a Refused with their message."""
    try:
        yield
    except errors as e:
        raise Refused(str(e)) from None


def refuse_existing(*paths: Path, overwrite: bool) -> None:
    """An output that exists (a file, or a directory with anything in it) is replaced only with --overwrite."""
    for path in paths:
        if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
            raise Refused(f'{path} exists; pass --overwrite to replace it')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='lamp-models', description='Reward model tools: score frames, fetch '
                                     'weights, export the R3M reward for the robot, '
                                     'finetune the reward in-domain.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    score = sub.add_parser('score', help='score frames against an instruction with a reward model',
                           description='Print R(first, frame, instruction) for each frame and instruction, at the '
                                       'images\' own size (no resize), to sanity-check a reward model on your '
                                       'camera frames before a robot run.')
    score.add_argument('--first', type=Path, required=True, help="the episode's first frame (image file)")
    score.add_argument('--frame', type=Path, required=True, nargs='+', help='frame(s) to score (image files)')
    score.add_argument('--instruction', required=True, action='append',
                       help='instruction (repeat the option for several)')
    score.add_argument('--model', choices=SCORE_MODELS, default='r3m',
                       help='r3m (torch), r3m-onnx (an export-onnx directory), clip (ZeST CLIP); default r3m')
    score.add_argument('--checkpoint', type=Path, default=None,
                       help=f'checkpoint directory (default for r3m: {default_checkpoint_dir(DEFAULT_SIZE)})')
    score.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda (default cpu)')
    score.add_argument('--threads', type=int, default=2, help='onnxruntime threads for r3m-onnx (default 2)')
    score.set_defaults(run=cmd_score)

    fetch = sub.add_parser('fetch', help='download official weights (where the machine is online)',
                           description='Download the official R3M checkpoint (model.pt, config.yaml; the '
                                       'vocabulary is copied from a local package), resumable, verified, written '
                                       'atomically. Offline, it says which files to place where by hand.')
    fetch.add_argument('model', choices=['r3m'], help='which weights')
    fetch.add_argument('--size', type=int, choices=SIZES, default=DEFAULT_SIZE,
                       help=f'ResNet depth (default {DEFAULT_SIZE}, as LAMP)')
    fetch.add_argument('--dest', type=Path, default=None,
                       help=f'directory (default {default_checkpoint_dir(DEFAULT_SIZE).parent}/resnet<size>)')
    fetch.add_argument('--timeout', type=float, default=15.0, help='network timeout per operation, s (default 15)')
    fetch.add_argument('--quiet', action='store_true', help='no progress bar')
    fetch.set_defaults(run=cmd_fetch)

    export = sub.add_parser('export-onnx', help='export the R3M reward to ONNX for the reward node',
                            description='Export R3M (image encoder with fused normalization, reward head, text '
                                        'encoder) to ONNX, checked against torch; the robot runs it without torch.')
    export.add_argument('--checkpoint', type=Path, default=None,
                        help=f'R3M checkpoint directory (default {default_checkpoint_dir(DEFAULT_SIZE)})')
    export.add_argument('--out', type=Path, default=None,
                        help=f'output directory (default {default_onnx_dir(DEFAULT_SIZE).parent}/resnet<size>_onnx)')
    export.add_argument('--verify-size', type=int, nargs='+', default=[128],
                        help='square image sizes to check torch vs onnxruntime at (default 128)')
    export.add_argument('--overwrite', action='store_true', help='replace an existing export at --out')
    export.set_defaults(run=cmd_export_onnx)

    tune = sub.add_parser('finetune-reward', help='finetune the R3M language reward on labeled videos',
                          description="Train R3M's language-reward head (optionally the last ResNet stage) on "
                                      "episode files with R3M's language objective: the score of (first frame, "
                                      'later frame, instruction) rises with progress and beats other videos and '
                                      "other tasks' instructions. Writes an R3M checkpoint (official layout) at "
                                      '--out and its ONNX export at <out>_onnx, and reports held-out ranking '
                                      'accuracy.')
    start = tune.add_mutually_exclusive_group(required=True)
    start.add_argument('--checkpoint', type=Path, help='start from this R3M checkpoint directory')
    start.add_argument('--size', type=int, choices=SIZES,
                       help='start from random weights of this ResNet depth (no pretrained weights needed)')
    tune.add_argument('--episodes', type=Path, required=True, help='directory of episode files (*.npz)')
    tune.add_argument('--out', type=Path, required=True, help='output checkpoint directory')
    tune.add_argument('--train-last-stage', action='store_true', help='also train ResNet layer4')
    tune.add_argument('--steps', type=int, default=2000, help='optimizer steps (default 2000)')
    tune.add_argument('--holdout', type=float, default=0.2,
                      help="fraction of each task's episodes held out for the report (default 0.2)")
    tune.add_argument('--batch-size', type=int, default=16, help='videos per step (default 16, as R3M)')
    tune.add_argument('--lr', type=float, default=1e-4, help='Adam learning rate (default 1e-4, as R3M)')
    tune.add_argument('--language-negatives', type=int, default=3,
                      help="other tasks' instructions per positive (default 3)")
    tune.add_argument('--max-frames', type=int, default=64, help='frames kept per episode, evenly spaced (default 64)')
    tune.add_argument('--hidden-dim', type=int, default=1024, help='head width for --size (default 1024, as R3M)')
    tune.add_argument('--reset-head', action='store_true', help='re-initialize the head first (with --checkpoint)')
    tune.add_argument('--include-failures', action='store_true', help='train on unsuccessful episodes too')
    tune.add_argument('--seed', type=int, default=0, help='seed of the split, sampling and random weights')
    tune.add_argument('--device', default='cpu', help='torch device (default cpu)')
    tune.add_argument('--threads', type=int, default=2, help='torch CPU threads (default 2)')
    tune.add_argument('--overwrite', action='store_true', help='replace an existing --out (and <out>_onnx)')
    tune.add_argument('--quiet', action='store_true', help='no progress bars')
    tune.set_defaults(run=cmd_finetune_reward)

    cls = sub.add_parser('train-classifier', help='train a binary success classifier (a reward the robot can run)',
                         description='Train p(success | frame) from episode files (lamp-sim record-demos, lamp-ros '
                                     'record): the last frames of successful episodes are positives, the rest '
                                     'negatives. Writes classifier.onnx + classifier.json for the reward node '
                                     '(`model: classifier`), checked in onnxruntime against torch, with held-out '
                                     'accuracy, precision and recall.')
    cls.add_argument('--episodes', type=Path, required=True, help='directory of episode files (*.npz)')
    cls.add_argument('--out', type=Path, default=None, help=f'output directory (default {default_classifier_dir()})')
    cls.add_argument('--image-size', type=int, default=64, help='square frame size it classifies (default 64)')
    cls.add_argument('--positive-frames', type=int, default=3,
                     help='last frames of a successful episode labelled success (default 3)')
    cls.add_argument('--margin-frames', type=int, default=3, help='frames before those left out (default 3)')
    cls.add_argument('--steps', type=int, default=1500, help='optimizer steps (default 1500)')
    cls.add_argument('--holdout', type=float, default=0.2, help='fraction of episodes held out (default 0.2)')
    cls.add_argument('--threshold', type=float, default=0.5, help='probability that counts as success (default 0.5)')
    cls.add_argument('--seed', type=int, default=0, help='seed of the split, sampling and weights')
    cls.add_argument('--threads', type=int, default=2, help='torch CPU threads (default 2)')
    cls.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    cls.add_argument('--quiet', action='store_true', help='no progress bar')
    cls.set_defaults(run=cmd_train_classifier)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    from models.r3m.fetch import FetchError
    from models.r3m.runtime import OnnxExportInvalid
    try:
        return run(args)
    except WeightsMissing as e:
        print(str(e), file=sys.stderr)
        return EXIT_WEIGHTS_MISSING
    except (FetchError, CheckpointError, OnnxExportInvalid, FileExistsError, Refused) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    raise SystemExit(main())
