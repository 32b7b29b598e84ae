"""Scale-out on Ray, measured on this machine: env steps/s into the learner and learner updates/s with 1, 2, ...
simulated robots (Ray actors, lamp_ros/scale), and the learner's ingest ceiling (transitions/s with images, no
training, one robot sending as fast as the link takes); then what a pretraining robot adds per step: LAMP's r_VLM
scored on the robot (R3M at its published size, ResNet-50 + 6-layer DistilBERT, random weights, ONNX), against
the sim env step of the same run.

    python bench/scale_out.py [--actors 1 2] [--seconds 30] [--preset cpu] [--cameras front wrist] [--no-vlm]

Rates are taken over windows of --window seconds after a warm-up (the first bundle, the first episodes); each
line prints the median and the 1st percentile (p99 of the slow side) of the windows, and the ratio to the 1-actor
run of this same invocation (scaling efficiency = ratio / actors). Absolute rates drift with the machine's load;
the ratios are the result.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('MUJOCO_GL', 'egl')

from lamp_ros.core.transitions import TransitionAssembler  # noqa: E402
from lamp_ros.learner.learner import Learner, LearnerOptions  # noqa: E402
from lamp_ros.link.outbox import frames_size  # noqa: E402
from lamp_ros.link.robot_client import ClientConfig, LinkClient  # noqa: E402
from lamp_ros.link.wire import Message, encode  # noqa: E402
from lamp_ros.scale.cluster import Fleet, FleetSpec, connect  # noqa: E402
from training.config import preset  # noqa: E402


def windows(samples: list[tuple[float, int, int]], window: float) -> tuple[np.ndarray, np.ndarray]:
    """(env steps/s, updates/s) per window from (time, env steps, updates) samples."""
    steps, updates = [], []
    start = samples[0]
    for t, s, u in samples[1:]:
        if t - start[0] >= window:
            steps.append((s - start[1]) / (t - start[0]))
            updates.append((u - start[2]) / (t - start[0]))
            start = (t, s, u)
    return np.array(steps), np.array(updates)


def fleet_rates(actors: int, args: argparse.Namespace, work: Path) -> dict[str, np.ndarray]:
    learner = Learner(LearnerOptions(work / f'learner_{actors}', preset=args.preset, cameras=tuple(args.cameras),
                                     bind='tcp://127.0.0.1:*'))
    stop = threading.Event()
    trainer = threading.Thread(target=learner.run, args=(stop,), daemon=True)
    trainer.start()
    size = learner.config.agent.image_size
    fleet = Fleet(FleetSpec(actors, learner.server.endpoint, args.task, work / f'robots_{actors}', learner.cameras,
                            (size, size), episode_steps=50, reward_source='success', explore_std=0.2))
    env_steps = lambda: learner.store.transitions_stored      # noqa: E731  (acknowledged into the learner)
    try:
        warm_end = time.monotonic() + args.warmup
        while time.monotonic() < warm_end or len(fleet.episodes) < actors:
            fleet.poll()
        samples, end = [], time.monotonic() + args.seconds
        while time.monotonic() < end:
            fleet.poll(timeout_s=0.2)
            samples.append((time.monotonic(), env_steps(), learner.counters.updates))
    finally:
        fleet.stop()
        stop.set()
        trainer.join()
        learner.close()
    steps, updates = windows(samples, args.window)
    return {'steps': steps, 'updates': updates}


def ingest_ceiling(args: argparse.Namespace, work: Path, size: int) -> np.ndarray:
    """Transitions/s the learner acknowledges from one robot sending ready chunks as fast as it can (no training:
    updates_per_transition 0), images of the agent's size for every camera."""
    learner = Learner(LearnerOptions(work / 'ingest', preset=args.preset, cameras=tuple(args.cameras),
                                     bind='tcp://127.0.0.1:*', updates_per_transition=0.0))
    client = LinkClient(ClientConfig(endpoint=learner.server.endpoint, robot_id='bench', outbox_dir=work / 'outbox',
                                     bundle_dir=work / 'bundles', cameras=tuple(args.cameras), reward_source='task'))
    rng = np.random.default_rng(0)
    episode = episode_chunks(rng, size, tuple(args.cameras))
    sample = episode()
    wire = sum(frames_size(encode(Message('chunk', meta, arrays))) for meta, arrays in sample)
    print(f'on the wire: {wire / sum(len(a["action"]) for _, a in sample):.0f} bytes per transition '
          f'({size}x{size}, {"+".join(args.cameras)}, chunks of 10, the final frames included)')
    rates, sent, acked_before = [], 0, 0
    try:
        end = time.monotonic() + args.seconds
        t0 = time.monotonic()
        while time.monotonic() < end:
            if client.backlog < 64:
                for meta, arrays in episode():
                    client.send(meta, arrays)
                    sent += len(arrays['action'])
            time.sleep(0.001)
            if time.monotonic() - t0 >= args.window:
                acked = learner.store.transitions_stored
                rates.append((acked - acked_before) / (time.monotonic() - t0))
                acked_before, t0 = acked, time.monotonic()
    finally:
        client.close()
        learner.close()
    return np.array(rates)


def episode_chunks(rng: np.random.Generator, size: int, cameras: tuple[str, ...]):
    """A function making one 50-step episode's chunks (random images: what compression cannot shrink)."""
    state = np.array([0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0], np.float32)

    def make() -> list:
        a = TransitionAssembler('bench', 10, reward_timeout_s=0.5)
        a.start('push button')
        for t in range(51):
            a.on_reward(float(t), 0.0)
            if t < 50:
                more = {c: rng.integers(0, 255, (size, size, 3), np.uint8) for c in cameras[1:]}
                a.on_step(0.0, rng.integers(0, 255, (size, size, 3), np.uint8), float(t), state,
                          rng.uniform(-1, 1, 4).astype(np.float32), False, more)
        final = rng.integers(0, 255, (size, size, 3), np.uint8)
        more = {c: rng.integers(0, 255, (size, size, 3), np.uint8) for c in cameras[1:]}
        return a.ready_chunks(0.0) + a.stop(0.0, final, 50.0, state, True, '', more)
    return make


def env_step_seconds(image_size: int, cameras: tuple[str, ...], steps: int = 200) -> np.ndarray:
    """One sim env step (physics + rendering every camera) at the given image size: an actor's cost per step
    before its policy (the paper preset: 128, front + wrist)."""
    import sim
    env = sim.make('push_button', image_size=(image_size, image_size), randomize=True, cameras=cameras)
    env.reset(seed=0)
    rng, times = np.random.default_rng(0), []
    for _ in range(steps):
        start = time.perf_counter()
        env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        times.append(time.perf_counter() - start)
    env.close()
    return np.array(times)


def vlm_step_seconds(image_sizes: tuple[int, ...], steps: int = 50) -> dict[int, np.ndarray]:
    """A pretraining robot's r_VLM per step (lamp_ros/scale/sim_robot.py VlmProgress: one frame embedded, the head)
    with R3M's published architecture exported to ONNX, at each frame size given."""
    from lamp_ros.scale.sim_robot import VlmProgress
    from models.r3m.checkpoint import save_checkpoint
    from models.r3m.model import R3MNet
    from models.r3m.onnx_export import export_onnx
    from models.r3m.reward import R3MReward
    from models.text_encoder import SentenceEncoder
    from models.text_encoder import default_vocab_path
    with tempfile.TemporaryDirectory() as tmp:
        vocab = default_vocab_path()
        text = SentenceEncoder.random(n_layers=6, dim=768, n_heads=12, hidden_dim=3072,
                                      vocab_size=len(vocab.read_text().splitlines()), seed=0)
        checkpoint = save_checkpoint(R3MNet.random(size=50, lang_enc=text, seed=0), Path(tmp) / 'r3m', vocab)
        export_onnx(R3MReward.load(checkpoint), Path(tmp) / 'onnx', verify_sizes=(64,))
        rng, times = np.random.default_rng(0), {}
        for size in image_sizes:
            vlm = VlmProgress(Path(tmp) / 'onnx')
            vlm.start(rng.integers(0, 256, (size, size, 3), np.uint8), 'push the button')
            samples = []
            for _ in range(steps):
                frame = rng.integers(0, 256, (size, size, 3), np.uint8)
                start = time.perf_counter()
                vlm(frame)
                samples.append(time.perf_counter() - start)
            times[size] = np.array(samples)
    return times


def line(name: str, values: np.ndarray, baseline: float | None, actors: int = 1) -> str:
    median, low = float(np.median(values)), float(np.percentile(values, 1))
    text = f'{name:<34} median {median:8.1f}/s   p99 (slow side) {low:8.1f}/s   windows {len(values):3d}'
    if baseline:                                   # None: no baseline; 0: nothing to compare with
        text += f'   x{median / baseline:.2f} of 1 actor, efficiency {median / baseline / actors:.2f}'
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--actors', nargs='+', type=int, default=[1, 2])
    p.add_argument('--seconds', type=float, default=30.0, help='measured seconds per configuration')
    p.add_argument('--warmup', type=float, default=10.0)
    p.add_argument('--window', type=float, default=2.0)
    p.add_argument('--preset', default='cpu', choices=('debug', 'cpu'))
    p.add_argument('--cameras', nargs='+', default=['front', 'wrist'])
    p.add_argument('--task', default='push_button')
    p.add_argument('--no-vlm', action='store_true', help="skip the pretraining robot's r_VLM cost")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cluster = connect(None, num_cpus=max(args.actors) + 1)
    print(f'Ray here: {cluster}; machine: {os.cpu_count()} CPUs; preset {args.preset}, cameras {args.cameras}')
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base_steps = base_updates = None
        for actors in args.actors:
            rates = fleet_rates(actors, args, work)
            if base_steps is None:
                base_steps, base_updates = float(np.median(rates['steps'])), float(np.median(rates['updates']))
            print(line(f'{actors} actor(s): env steps into learner', rates['steps'], base_steps, actors))
            print(line(f'{actors} actor(s): learner updates', rates['updates'], base_updates, actors))
        size = preset(args.preset).agent.image_size
        print(line('ingest ceiling: transitions acked', ingest_ceiling(args, work, size), None))
        print('(the first configuration is the baseline; ratios are medians over it)')
    env_ms = {}
    for size in (64, 128):
        t = env_step_seconds(size, tuple(args.cameras)) * 1000
        env_ms[size] = float(np.median(t))
        print(f'sim env step, {size}x{size} {"+".join(args.cameras)}: median {np.median(t):.2f} ms, '
              f'p99 {np.percentile(t, 99):.2f} ms ({1000 / np.median(t):.0f} steps/s per actor CPU before the policy)')
    if not args.no_vlm:
        for size, t in vlm_step_seconds((64, 128, 224)).items():
            t = t * 1000
            print(f'pretraining robot r_VLM per step, R3M ResNet-50 ONNX, {size}x{size} frame: median '
                  f'{np.median(t):.2f} ms, p99 {np.percentile(t, 99):.2f} ms, x{np.median(t) / env_ms[64]:.1f} of '
                  f'the 64x64 env step')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
