"""Policy-step latency: onnxruntime (`PolicyRuntime.act`, one thread) vs torch eager on the same PolicyNet.

    .venv/bin/python bench/policy_latency.py [--iters N] [--sizes 64 128]

Each image size gets a freshly initialised PolicyNet (training/policy.py, the network every bundle ships;
feed-forward), exported to a temporary bundle (with a one-layer, tiny-vocabulary text encoder: only the
policy is timed). Both sides are timed in the same process, after a warm-up, on the same cycling set of
random observations; the torch side includes its numpy->tensor conversions, as a torch control loop would. Targets: ORT p99 <= 0.8 ms at 64x64 and >= 3x torch eager.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from models.runtime import PolicyRuntime  # noqa: E402
from models.text_encoder import SentenceEncoder  # noqa: E402
from training.agent.config import AgentConfig  # noqa: E402
from training.export import DEFAULT_STATE_KEYS, export_bundle  # noqa: E402
from training.policy import PolicyNet  # noqa: E402

STATE_KEYS = DEFAULT_STATE_KEYS                   # the state the shipped policy takes (sim.STATE_KEYS)
EMBEDDING_DIM = 384                               # MiniLM, the default text encoder
TINY_VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'push', 'the', 'button', 'pick', 'up', 'block']
TARGET_P99_MS, TARGET_RATIO = 0.8, 3.0


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p99_ms: float


def measure(step: Callable[[int], object], iters: int, warmup: int) -> Timing:
    for i in range(warmup):
        step(i)
    times = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        step(i)
        times[i] = time.perf_counter_ns() - t0
    times /= 1e6
    return Timing(float(np.median(times)), float(np.percentile(times, 99)))


def bench_size(size: int, iters: int, warmup: int, work: Path) -> tuple[Timing, Timing]:
    config = AgentConfig(image_size=size, state_dim=len(STATE_KEYS), embedding_dim=EMBEDDING_DIM)
    torch.manual_seed(0)
    net = PolicyNet(config).eval()
    vocab = work / 'vocab.txt'
    vocab.write_text('\n'.join(TINY_VOCAB) + '\n')
    text = SentenceEncoder.random(n_layers=1, dim=config.embedding_dim, n_heads=12, hidden_dim=config.embedding_dim,
                                  vocab_size=len(TINY_VOCAB))
    bundle = work / f'bundle_{size}'
    export_bundle(net, text, vocab, bundle, model_version='bench', state_keys=STATE_KEYS, image_size=size)
    runtime = PolicyRuntime.load(bundle, threads=1)

    rng = np.random.default_rng(0)
    n_obs = 16
    images = rng.integers(0, 256, (n_obs, size, size, 3), dtype=np.uint8)
    states = rng.normal(size=(n_obs, config.state_dim)).astype(np.float32)
    embedding = runtime.embed_instruction('push the button')

    def ort_step(i: int) -> np.ndarray:
        return runtime.act(images[i % n_obs], states[i % n_obs], embedding)

    emb_t = torch.from_numpy(embedding[None])

    def torch_step(i: int) -> np.ndarray:
        image_t = torch.from_numpy(images[i % n_obs][None])
        state_t = torch.from_numpy(states[i % n_obs][None])
        return net(image_t, state_t, emb_t)[0].numpy()

    ort_t = measure(ort_step, iters, warmup)
    with torch.inference_mode():
        torch_t = measure(torch_step, iters, warmup)
    return ort_t, torch_t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iters', type=int, default=3000, help='timed steps per backend and size (default 3000)')
    parser.add_argument('--warmup', type=int, default=300, help='untimed steps first (default 300)')
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128], help='square image sizes (default 64 128)')
    args = parser.parse_args()

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix='policy_latency_') as work:
        for size in args.sizes:
            rows.append((size, *bench_size(size, args.iters, args.warmup, Path(work))))

    print(f'policy step latency, {args.iters} steps after {args.warmup} warm-up, one thread '
          f'(onnxruntime via PolicyRuntime.act; torch {torch.__version__} eager, inference_mode)')
    header = (f'{"image":>9} | {"ORT median":>10} {"ORT p99":>8} | {"torch median":>12} {"torch p99":>9} | '
              f'{"torch/ORT median":>16} {"torch/ORT p99":>13}')
    print(header)
    print('-' * len(header))
    for size, o, t in rows:
        print(f'{size:>4}x{size:<4} | {o.median_ms:8.3f}ms {o.p99_ms:6.3f}ms | {t.median_ms:10.3f}ms {t.p99_ms:7.3f}ms | '
              f'{t.median_ms / o.median_ms:15.2f}x {t.p99_ms / o.p99_ms:12.2f}x')
    for size, o, t in rows:
        if size == 64:
            ok_p99 = o.p99_ms <= TARGET_P99_MS
            ok_ratio = t.median_ms / o.median_ms >= TARGET_RATIO
            print(f'64x64 targets: ORT p99 {o.p99_ms:.3f} ms <= {TARGET_P99_MS} ms: {"yes" if ok_p99 else "NO"}; '
                  f'torch/ORT median {t.median_ms / o.median_ms:.2f}x >= {TARGET_RATIO:g}x: {"yes" if ok_ratio else "NO"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
