"""Relabeling speed: models.relabel (each frame and instruction embedded once, head per triple) vs LAMP's way
(both frame embeddings recomputed for every frame under every instruction), same model, same run.

    .venv/bin/python bench/relabel.py [--size 50] [--rounds 6] [--naive-instructions 1]

R3M with random weights (speed does not depend on them): ResNet-50 by default (LAMP's model) at 128x128
(LAMP's frames), head hidden 1024 (the released R3M's), DistilBERT 768 wide. 40 instructions x 150-frame
episodes. Each round takes one episode and runs models.relabel on it (empty cache, then again cached) and
LAMP's relabel (r3mreward.py: embed init_image [T] and image [T], then the head, once per instruction) under
--naive-instructions instructions, scaled linearly to all of them (each instruction is an independent full
pass; --naive-instructions 40 runs them all). Interleaving the two ways in short rounds lets both see the
same load on a shared machine; the speed-up is the median of the rounds' ratios. Target: >= 50x.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from models.r3m.model import R3MNet  # noqa: E402
from models.r3m.reward import R3MReward  # noqa: E402
from models.relabel import FrameEmbeddingCache, relabel  # noqa: E402
from models.text_encoder import SentenceEncoder, default_vocab_path  # noqa: E402

VERBS = ['push', 'pick up', 'open', 'close', 'lift', 'slide', 'turn', 'touch', 'move', 'knock over']
OBJECTS = ['the button', 'the red block', 'the drawer', 'the mug']
TARGET_RATIO = 50.0


def lamp_relabel(model: R3MReward, frames: np.ndarray, instructions: list[str]) -> np.ndarray:
    """LAMP's relabel, instruction by instruction: embed the repeated first frame and every frame, then score."""
    rewards = np.empty((len(frames), len(instructions)), np.float32)
    for i, text in enumerate(instructions):
        init = model.embed_images(np.repeat(frames[:1], len(frames), axis=0))
        current = model.embed_images(frames)
        rewards[:, i] = model.score(init, current, model.embed_instructions([text]))
    return rewards


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, choices=[18, 34, 50], default=50, help='ResNet depth (default 50, as LAMP)')
    parser.add_argument('--episodes', type=int, default=3, help='distinct episodes, used in turn (default 3)')
    parser.add_argument('--rounds', type=int, default=6,
                        help='rounds of (models.relabel, LAMP way) on one episode, interleaved; medians (default 6)')
    parser.add_argument('--frames', type=int, default=150, help='frames per episode (default 150)')
    parser.add_argument('--instructions', type=int, default=40, help='instructions (default 40)')
    parser.add_argument('--naive-instructions', type=int, default=1,
                        help='instructions run the LAMP way per round, scaled to all (default 1)')
    parser.add_argument('--image', type=int, default=128, help='square frame size (default 128)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (default 2)')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    instructions = [f'{v} {o}' for v, o in itertools.product(VERBS, OBJECTS)][:args.instructions]
    if len(instructions) < args.instructions:
        parser.error(f'at most {len(VERBS) * len(OBJECTS)} instructions')
    naive_n = min(args.naive_instructions, len(instructions))
    model = R3MReward(R3MNet.random(size=args.size, hidden_dim=1024, lang_enc=SentenceEncoder.random(n_layers=2)),
                      default_vocab_path(), name=f'r3m-resnet{args.size}-random')
    rng = np.random.default_rng(0)
    episodes = {f'ep{i}': rng.integers(0, 256, (args.frames, args.image, args.image, 3), dtype=np.uint8)
                for i in range(args.episodes)}
    model.embed_images(episodes['ep0'][:8])            # warm-up

    # Interleaved rounds on one episode each: both ways see the same load (other processes share these cores).
    ours_s, cached_s, naive_s = [], [], []             # seconds per episode
    for r in range(args.rounds):
        print(f'round {r + 1}/{args.rounds} ...', file=sys.stderr, flush=True)
        episode_id = list(episodes)[r % len(episodes)]
        one = {episode_id: episodes[episode_id]}
        cache = FrameEmbeddingCache(model.name)
        t0 = time.perf_counter()
        ours = relabel(model, one, instructions, cache, progress=False)[episode_id]
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        relabel(model, one, instructions, cache, progress=False)
        cached_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive = lamp_relabel(model, episodes[episode_id], instructions[:naive_n])
        naive_s.append((time.perf_counter() - t0) * len(instructions) / naive_n)
        if not np.allclose(naive, ours[:, :naive_n], atol=1e-4, rtol=1e-4):
            raise AssertionError('the LAMP way and models.relabel disagree')
    ratios = [n / o for n, o in zip(naive_s, ours_s)]

    print(f'\nrelabel {len(instructions)} instructions x {args.frames}-frame episodes, {args.image}x{args.image}, '
          f'R3M ResNet-{args.size} (random weights, head hidden 1024), CPU {args.threads} threads, '
          f'{args.rounds} interleaved rounds; load average at the end '
          + ', '.join(f'{x:.2f}' for x in os.getloadavg()))
    header = f'{"method":<66} | {"s/episode med":>13} {"max":>7} {"episodes/s":>10} | {"vs LAMP":>7}'
    print(header)
    print('-' * len(header))
    scaled = '' if naive_n == len(instructions) else f' ({naive_n} run, x{len(instructions) / naive_n:g})'
    naive_med = float(np.median(naive_s))
    for label, times in (('LAMP: both frames embedded per (frame, instruction)' + scaled, naive_s),
                         ('models.relabel: each frame once, each instruction once', ours_s),
                         ('models.relabel, frame embeddings already cached', cached_s)):
        med = float(np.median(times))
        print(f'{label:<66} | {med:13.3f} {max(times):7.3f} {1 / med:10.3f} | {naive_med / med:6.1f}x')
    ratio = float(np.median(ratios))
    print(f'\nspeed-up, median of rounds: {ratio:.1f}x (rounds: {", ".join(f"{x:.1f}x" for x in ratios)}; '
          f'target >= {TARGET_RATIO:g}x: {"yes" if ratio >= TARGET_RATIO else "NO"}); both ways give the same rewards')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
