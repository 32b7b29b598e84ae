"""Pushing a ~10 MB policy bundle from the learner to the robot while the robot keeps its control rate.

One process holds both sides (harsher than the real split: the learner link, the robot link, the bundle
loader and the control loop all share one GIL here):
  learner   LinkServer.push_bundle (bytes of every bundle file, one message, loopback)
  robot     LinkClient stores it on disk (temporary dir + rename) -> BundleSwapper loads and validates it off
            the control thread (onnxruntime sessions, control rate, action scale, instruction embedding)
  control   a 10 Hz loop running the policy (PolicyRuntime.act); at each tick it takes a ready bundle
            (a pointer swap), as the policy node does between episodes

Each push changes the policy file (two bundles alternate: same text encoder, different policy weights), as the
learner's bundles do. Rows, for full pushes (every file: a robot the learner has not sent a bundle yet) and
delta pushes (changed files only; the robot hard-links the rest from its previous bundle): push -> on disk,
push -> validated, push -> swapped in (median, p99 over --pushes each), MB sent; then the control loop's tick
lateness and missed ticks (a tick more than one period late) in a quiet phase (baseline, same run) and while
bundles arrive.

  .venv/bin/python bench/bundle_swap.py [--pushes 20] [--embedding-dim 84]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lamp_ros.contract import ACTION_SCALE_M, DEFAULT_CONTROL_RATE_HZ
from lamp_ros.core.bundle_swap import BundleSwapper, load_checked
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from lamp_ros.link.robot_client import ClientConfig, LinkClient
from models.bundle import POLICY_FILE, read_manifest, write_manifest
from training.export import export_random_bundle
from models.runtime import PolicyRuntime

PERIOD = 1.0 / DEFAULT_CONTROL_RATE_HZ
INSTRUCTION = 'push the button'


class ControlLoop:
    """10 Hz policy steps on their own thread; records how late each tick starts and which bundle ran."""

    def __init__(self, runtime: PolicyRuntime, swapper: BundleSwapper) -> None:
        self.runtime, self.swapper = runtime, swapper
        self.embedding = runtime.embed_instruction(INSTRUCTION)
        size = runtime.manifest.image_size
        self.image = np.random.default_rng(0).integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)
        self.state = np.zeros(len(runtime.manifest.state_keys), np.float32)
        self.lateness: list[float] = []
        self.swapped_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self) -> int:
        return len(self.lateness)

    def _run(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            now = time.perf_counter()
            if now < next_t:
                time.sleep(next_t - now)
                continue
            self.lateness.append(now - next_t)
            ready = self.swapper.take()
            if ready is not None:                          # the swap itself: a reference assignment
                self.runtime, self.embedding = ready.runtime, ready.embedding
                self.swapped_at[ready.version] = time.perf_counter()
            self.runtime.act(self.image, self.state, self.embedding)
            next_t += PERIOD
            if time.perf_counter() - next_t > PERIOD:      # more than a period behind: a missed tick, resync
                next_t = time.perf_counter()


def stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values) * 1000
    return float(np.median(a)), float(np.percentile(a, 99))


def missed(lateness: list[float]) -> int:
    return int(sum(x > PERIOD for x in lateness))


@dataclass
class PushTimes:
    """When each version was pushed, on the robot's disk and validated (perf_counter), and what it cost in bytes."""
    pushed: dict[str, float] = field(default_factory=dict)
    stored: dict[str, float] = field(default_factory=dict)
    validated: dict[str, float] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)


def two_bundles(tmp: Path, embedding_dim: int) -> tuple[Path, Path, float]:
    """Two bundles alike but for the policy (same text encoder, other weights), and the first one's size in MB."""
    bundle, other = tmp / 'bundle', tmp / 'bundle_b'
    export_random_bundle(bundle, image_size=64, text_layers=2, embedding_dim=embedding_dim)
    export_random_bundle(tmp / 'seed1', image_size=64, text_layers=2, embedding_dim=embedding_dim, seed=1)
    shutil.copytree(bundle, other)
    shutil.copyfile(tmp / 'seed1' / POLICY_FILE, other / POLICY_FILE)
    write_manifest(other, read_manifest(bundle, verify_files=False))
    return bundle, other, sum(f.stat().st_size for f in bundle.rglob('*') if f.is_file()) / 1e6


def push_all(server: LinkServer, loop: ControlLoop, swapper: BundleSwapper, bundles: tuple[Path, Path],
             pushes: int, times: PushTimes) -> None:
    """`pushes` full pushes (as to a robot new to the learner), then as many delta pushes, each waited for."""
    for k in range(2 * pushes):
        full = k < pushes
        version = f'{"full" if full else "delta"}{k:04d}'
        if full:
            server.bundle_acks.clear()             # as if the robot were new: every file travels
        sent = server.bundle_bytes_sent
        times.pushed[version] = time.perf_counter()
        server.push_bundle(bundles[k % 2], version)
        deadline = time.perf_counter() + 10
        while version not in loop.swapped_at and time.perf_counter() < deadline:
            time.sleep(0.005)
            if version in times.stored and version not in times.validated and not swapper.busy:
                times.validated[version] = time.perf_counter()
        times.validated.setdefault(version, loop.swapped_at.get(version, float('nan')))
        times.bytes_sent[version] = server.bundle_bytes_sent - sent
        time.sleep(0.3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--pushes', type=int, default=20)
    p.add_argument('--embedding-dim', type=int, default=84, help='text encoder width: sets the bundle size')
    p.add_argument('--quiet-s', type=float, default=10.0, help='baseline phase without pushes, seconds')
    args = p.parse_args()
    times = PushTimes()
    with tempfile.TemporaryDirectory() as tmp:
        bundle, other, size_mb = two_bundles(Path(tmp), args.embedding_dim)
        load = lambda path: load_checked(path, 1, DEFAULT_CONTROL_RATE_HZ, ACTION_SCALE_M)   # noqa: E731
        swapper = BundleSwapper(load, print)

        def on_bundle(version: str, path: Path) -> None:
            times.stored[version] = time.perf_counter()
            swapper.offer(path, version, INSTRUCTION)

        server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), lambda *a: None, lambda _: False)
        client = LinkClient(ClientConfig(endpoint=server.endpoint, robot_id='bench', outbox_dir=Path(tmp) / 'outbox',
                                         bundle_dir=Path(tmp) / 'robot_bundles'), on_bundle=on_bundle)
        while not client.connected:
            time.sleep(0.05)
        loop = ControlLoop(load(bundle), swapper)
        loop.start()
        time.sleep(args.quiet_s)
        quiet = loop.lateness[:loop.mark()]
        start_mark = loop.mark()
        push_all(server, loop, swapper, (other, bundle), args.pushes, times)
        busy = loop.lateness[start_mark:]
        loop.stop()
        client.close()
        server.close()
    print(f'\nbundle {size_mb:.1f} MB (ONNX policy 64x64 + text encoder {args.embedding_dim}-d + tokenizer), '
          f'loopback, control at {DEFAULT_CONTROL_RATE_HZ:g} Hz; each push changes the policy')
    print_pushes(times, loop, args.pushes)
    print_lateness(quiet, busy)
    return 0


def print_pushes(times: PushTimes, loop: ControlLoop, pushes: int) -> None:
    print(f'{"":<40} {"median ms":>10} {"p99 ms":>10}')
    for kind, label in (('full', 'every file (a robot new to this learner)'),
                        ('delta', 'changed files only (each next bundle)')):
        done = [v for v in times.pushed if v.startswith(kind) and v in loop.swapped_at]
        mb = np.median([times.bytes_sent[v] for v in done]) / 1e6 if done else float('nan')
        print(f'{kind} push, {label}: {mb:.1f} MB sent, {len(done)}/{pushes} swapped in')
        for what, values in (('  push -> on disk (robot)', [times.stored[v] - times.pushed[v] for v in done]),
                             ('  push -> validated, ready', [times.validated[v] - times.pushed[v] for v in done]),
                             ('  push -> swapped in (next 10 Hz tick)',
                              [loop.swapped_at[v] - times.pushed[v] for v in done])):
            med, p99 = stats(values) if values else (float('nan'), float('nan'))
            print(f'{what:<40} {med:>10.1f} {p99:>10.1f}')


def print_lateness(quiet: list[float], busy: list[float]) -> None:
    q_med, q_p99 = stats(quiet)
    b_med, b_p99 = stats(busy)
    print(f'\n{"control tick lateness":<30} {"median ms":>10} {"p99 ms":>10} {"max ms":>8} {"ticks":>7} {"missed":>7}')
    print(f'{"quiet (baseline)":<30} {q_med:>10.2f} {q_p99:>10.2f} {max(quiet) * 1000:>8.1f} {len(quiet):>7} '
          f'{missed(quiet):>7}')
    print(f'{"while bundles arrive":<30} {b_med:>10.2f} {b_p99:>10.2f} {max(busy) * 1000:>8.1f} {len(busy):>7} '
          f'{missed(busy):>7}')
    print(f'p99 lateness ratio busy/quiet: {b_p99 / max(q_p99, 1e-6):.1f}x')


if __name__ == '__main__':
    raise SystemExit(main())
