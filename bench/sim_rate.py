"""Simulator speed: environment steps per second with both cameras at 64x64 and 128x128, physics only,
and reset time, single process (pinned to one CPU core by default).

    .venv/bin/python bench/sim_rate.py [--task push_button | --all-tasks] [--steps 300] [--cores 1]

One env step = one 0.1 s control period (50 physics steps) plus rendering the front and wrist cameras.
Actions are seeded uniform random; resets happen every 150 steps and are timed separately. Baselines
measured in the same run: Meta-World's button-press (rendered at the same size, if `metaworld` is
installed; metaworld 3.1.1 pins mujoco 3.3 and fails on our 4.0), else our own physics-only rate, and
a bare MuJoCo scene (one box) rendering two images per step: the renderer's ceiling on this machine.
Target: >= 150 env steps/s with both cameras at 128x128 on one core.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import sim  # noqa: E402  (sets MUJOCO_GL before mujoco loads)
import mujoco  # noqa: E402
from sim.rendering import OffscreenRenderer  # noqa: E402

TARGET_STEPS_PER_S = 150.0
EPISODE_STEPS = sim.EPISODE_STEPS


@dataclass(frozen=True)
class Row:
    name: str
    times_s: np.ndarray | None          # per-step wall times; None = skipped
    note: str = ''

    @property
    def rate(self) -> float:
        return float(len(self.times_s) / self.times_s.sum())


def time_steps(step: Callable[[int], object], steps: int, warmup: int,
               reset: Callable[[], object] | None = None) -> tuple[np.ndarray, list[float]]:
    """Per-step wall times of `steps` steps (after `warmup`), calling `reset` every episode (timed apart)."""
    times, resets = np.empty(steps), []
    for i in range(warmup + steps):
        if reset is not None and i % EPISODE_STEPS == 0:
            t0 = time.perf_counter()
            reset()
            resets.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step(i)
        if i >= warmup:
            times[i - warmup] = time.perf_counter() - t0
    return times, resets


def bench_lamp(task: str, size: int, steps: int, warmup: int, render: bool) -> tuple[np.ndarray, list[float]]:
    env = sim.make(task, image_size=size)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (warmup + steps, 4)).astype(np.float32)
    seeds = iter(range(10**6))
    scene = env.unwrapped.scene
    dt = env.unwrapped.config.control_dt

    def env_step(i: int) -> None:
        env.step(actions[i])

    def physics_step(i: int) -> None:          # env.step without the two renders
        a = actions[i]
        scene.apply_velocity(a[:3] * 0.03 / dt, bool(a[3] >= 0.5), dt)
        scene.reward(), scene.success(), scene.state()

    result = time_steps(env_step if render else physics_step, steps, warmup, lambda: env.reset(seed=next(seeds)))
    env.close()
    return result


def bench_bare_renderer(size: int, steps: int, warmup: int) -> np.ndarray:
    """Two renders per step of a one-box scene: what the renderer alone allows."""
    model = mujoco.MjModel.from_xml_string(f"""
        <mujoco><visual><quality shadowsize="0" offsamples="0"/><global offwidth="{size}" offheight="{size}"/></visual>
        <worldbody><light pos="0 0 2" castshadow="false"/><geom type="box" size=".1 .1 .1"/>
        <camera name="a" pos="1 0 .5" xyaxes="0 1 0 -.4 0 1"/><camera name="b" pos="0 1 .5" xyaxes="-1 0 0 0 -.4 1"/>
        </worldbody></mujoco>""")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = OffscreenRenderer(size, size)
    renderer.bind(model)
    times, _ = time_steps(lambda i: (renderer.render(data, 0), renderer.render(data, 1)), steps, warmup)
    renderer.close()
    return times


def bench_metaworld(size: int, steps: int, warmup: int) -> Row:
    name = f'Meta-World button-press, 1 camera {size}x{size}'
    if importlib.util.find_spec('metaworld') is None:
        return Row(name, None, 'skipped: metaworld is not installed (pip install metaworld)')
    import gymnasium
    importlib.import_module('metaworld')       # registers the Meta-World/* gymnasium ids
    env = gymnasium.make('Meta-World/MT1', env_name='button-press-v3', render_mode='rgb_array',
                         width=size, height=size)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (warmup + steps, 4)).astype(np.float32)
    times, _ = time_steps(lambda i: (env.step(actions[i]), env.render()), steps, warmup, lambda: env.reset())
    env.close()
    return Row(name, times)


def print_table(rows: list[Row], baseline: Row) -> None:
    print(f'\n| configuration | env steps/s | median ms | p99 ms | rate vs {baseline.name} |')
    print('|---|---|---|---|---|')
    for row in rows:
        if row.times_s is None:
            print(f'| {row.name} | - | - | - | {row.note} |')
            continue
        ms = row.times_s * 1e3
        print(f'| {row.name} | {row.rate:.0f} | {np.median(ms):.2f} | {np.percentile(ms, 99):.2f} | '
              f'{row.rate / baseline.rate:.2f}x |')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog='\n'.join(__doc__.splitlines()[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', default='push_button', help=f'one of {list(sim.ENV_IDS)}')
    parser.add_argument('--all-tasks', action='store_true', help='128x128 rows for every task too')
    parser.add_argument('--steps', type=int, default=300, help='timed steps per row (default: 300)')
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128])
    parser.add_argument('--cores', type=int, default=1, help='pin to this many CPU cores (0: no pinning)')
    args = parser.parse_args(argv)
    sim.env_id(args.task)
    if args.cores > 0:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
    print(f'CPU cores used: {sorted(os.sched_getaffinity(0))}, MUJOCO_GL={os.environ.get("MUJOCO_GL")}')

    resets: list[float] = []
    rows = [job() for job in tqdm(benchmark_jobs(args, resets), desc='benchmarks', unit='row')]
    metaworld = [row for row in rows if row.name.startswith('Meta-World')]
    physics = next(row for row in rows if 'physics only' in row.name)
    print_table(rows, next((row for row in metaworld if row.times_s is not None), physics))
    print_summary(rows, resets, args.task)
    return 0


def benchmark_jobs(args: argparse.Namespace, resets: list[float]) -> list[Callable[[], Row]]:
    """The rows to time: the LAMP scene at each size (and physics alone), every task at 128 with --all-tasks,
    Meta-World and a bare renderer as baselines; resets of --task are collected into `resets`."""
    def lamp_row(task: str, size: int, render: bool) -> Callable[[], Row]:
        def run() -> Row:
            times, reset_times = bench_lamp(task, size, args.steps, args.warmup, render)
            if task == args.task and render:
                resets.extend(reset_times)
            view = f'front+wrist {size}x{size}' if render else 'physics only (no rendering)'
            return Row(f'lamp {task}, {view}', times)
        return run

    jobs = [lamp_row(args.task, size, True) for size in args.sizes] + [lamp_row(args.task, 64, False)]
    if args.all_tasks:
        jobs += [lamp_row(task, 128, True) for task in sim.ENV_IDS if task != args.task]
    jobs += [lambda size=size: bench_metaworld(size, args.steps, args.warmup) for size in args.sizes]
    jobs += [lambda size=size: Row(f'bare MuJoCo renderer (one box), 2 images {size}x{size}',
                                   bench_bare_renderer(size, args.steps, args.warmup)) for size in args.sizes]
    return jobs


def print_summary(rows: list[Row], resets: list[float], task: str) -> None:
    print(f'\nreset (new randomized scene: compile + upload), {task}: median '
          f'{1e3 * np.median(resets):.1f} ms, max {1e3 * np.max(resets):.1f} ms over {len(resets)} resets')
    at_128 = next((row for row in rows if 'front+wrist 128x128' in row.name and task in row.name), None)
    if at_128 is not None:
        verdict = 'meets' if at_128.rate >= TARGET_STEPS_PER_S else 'MISSES'
        print(f'target >= {TARGET_STEPS_PER_S:.0f} env steps/s at 128x128 with both cameras: {verdict} '
              f'({at_128.rate:.0f}/s)')

if __name__ == '__main__':
    raise SystemExit(main())
