"""R3M image encoder throughput on the CPU: torch eager (R3MReward) vs onnxruntime (OnnxR3MReward), same net.

    .venv/bin/python bench/reward_encoder.py [--sizes 18 50] [--images 128 224] [--batches 1 16] [--seconds 6]

Random weights (no pretrained weights here; speed does not depend on them). Both sides take the same uint8
NHWC frames through their public embed_images (conversion and normalization included) with the same thread
count; their calls alternate for about 2 x --seconds per cell after a warm-up, so both see the same load
from other processes (a busy core hurts torch's OpenMP threads far more than onnxruntime's pool). The last
line answers the reward node's question: can ResNet-50 at 128x128 keep up with a 30 Hz camera?
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from models.r3m.model import R3MNet  # noqa: E402
from models.r3m.onnx_export import export_onnx  # noqa: E402
from models.r3m.reward import R3MReward  # noqa: E402
from models.r3m.runtime import OnnxR3MReward  # noqa: E402
from models.text_encoder import SentenceEncoder, default_vocab_path  # noqa: E402

CAMERA_HZ = 30.0


@dataclass(frozen=True)
class Timing:
    batches: int
    median_ms: float
    p99_ms: float

    def images_per_s(self, batch: int) -> float:
        return batch / (self.median_ms / 1e3)


def measure_pair(first: Callable[[], object], second: Callable[[], object], seconds: float, warmup: int = 2,
                 min_batches: int = 5) -> tuple[Timing, Timing]:
    """Time two steps alternately, call by call, so both see the same load from other processes."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    deadline = time.perf_counter() + seconds
    while len(times[0]) < min_batches or time.perf_counter() < deadline:
        for step, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            step()
            out.append(time.perf_counter() - t0)
    return tuple(Timing(len(t), float(np.median(t) * 1e3), float(np.percentile(t, 99) * 1e3)) for t in times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[18, 50], help='ResNet depths (default 18 50)')
    parser.add_argument('--images', type=int, nargs='+', default=[128, 224],
                        help='square image sizes (default 128 224)')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 16], help='images per call (default 1 16)')
    parser.add_argument('--seconds', type=float, default=6.0, help='timing per cell, s (default 6)')
    parser.add_argument('--threads', type=int, default=2, help='torch and onnxruntime threads (default 2)')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    vocab = default_vocab_path()
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=30522)  # not timed
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix='reward_encoder_') as work:
        for size in args.sizes:
            reward = R3MReward(R3MNet.random(size=size, hidden_dim=1024, lang_enc=text), vocab,
                               name=f'r3m-resnet{size}-random')
            export_onnx(reward, Path(work) / f'resnet{size}', verify_sizes=(args.images[0],))
            runtime = OnnxR3MReward.load(Path(work) / f'resnet{size}', threads=args.threads)
            for image in args.images:
                for batch in args.batches:
                    frames = rng.integers(0, 256, (batch, image, image, 3), dtype=np.uint8)
                    print(f'timing ResNet-{size} {image}x{image} batch {batch} ...', file=sys.stderr, flush=True)
                    t, o = measure_pair(lambda: reward.embed_images(frames), lambda: runtime.embed_images(frames),
                                        2 * args.seconds)
                    rows.append((size, image, batch, t, o))

    load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    print(f'\nR3M image encoder, CPU, {args.threads} threads (torch {torch.__version__} eager vs onnxruntime, calls '
          f'alternated; uint8 frames in, embeddings out); load average at the end {load}')
    header = (f'{"net":>9} {"image":>7} {"batch":>5} | {"torch med":>9} {"p99":>8} {"img/s":>7} | '
              f'{"ORT med":>9} {"p99":>8} {"img/s":>7} | {"ORT/torch":>9}')
    print(header)
    print('-' * len(header))
    for size, image, batch, t, o in rows:
        print(f'{"ResNet-" + str(size):>9} {image:>3}x{image:<3} {batch:>5} | {t.median_ms:7.1f}ms {t.p99_ms:6.1f}ms '
              f'{t.images_per_s(batch):7.1f} | {o.median_ms:7.1f}ms {o.p99_ms:6.1f}ms {o.images_per_s(batch):7.1f} | '
              f'{t.median_ms / o.median_ms:8.2f}x')
    node = [(t, o) for size, image, batch, t, o in rows if (size, image, batch) == (50, 128, 1)]
    if node:
        t, o = node[0]
        verdict = 'yes' if o.p99_ms <= 1e3 / CAMERA_HZ else 'NO'
        print(f'\nreward node, ResNet-50 128x128, one frame per call: onnxruntime {1e3 / o.median_ms:.1f} Hz median '
              f'({o.p99_ms:.1f} ms p99), torch {1e3 / t.median_ms:.1f} Hz; keeps up with a {CAMERA_HZ:g} Hz camera '
              f'(p99 <= {1e3 / CAMERA_HZ:.1f} ms): {verdict}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
