"""An exported policy bundle evaluated in the simulator with the robot's own runtime (`lamp-sim eval-bundle`).

The bundle runs in `models.runtime.PolicyRuntime` (onnxruntime + numpy), exactly as the ROS policy node
runs it, so the success rates measure what the robot would run, not the torch model it came from; no torch
is imported on this path. Scenes are randomized and drawn from held-out seeds that no training uses.
Episodes are spread over worker processes; each episode depends only on its (task, seed), so the results
do not depend on the number of workers. A worker that dies is reported, never skipped.
"""
from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import sim
from models.bundle import Manifest, read_manifest
from sim.scene import CAMERAS

HELD_OUT_SEED_BASE = 2_000_000_000
"""First held-out scene seed: equals training.run.EVAL_SEED_BASE (the training's evaluation scenes; training
episodes are seeded far below it). Defined here because sim must not import training."""

EPISODE_STEPS = 150
GRAPH_CAMERA_SIZE = 128
"""The square image the sim arm's camera publishes in the ROS graph (config/sim_arm.yaml image_size)."""


def render_scale(image_size: int) -> int:
    """Cameras render at the graph camera's size (or the bundle's, if larger) and are area-resized to the
    bundle's: the picture the ROS graph gives the policy (sim_arm renders 128x128; the policy node
    INTER_AREA-resizes it to a 64x64 bundle, and passes it as is to a 128x128 one)."""
    return max(1, GRAPH_CAMERA_SIZE // image_size)
CAMERA = 'front'               # the camera of the videos (the bundle's manifest names those the policy sees)
MAX_IMAGE_SIDE = 1024          # the sim renders any size; beyond this a manifest is surely wrong
WILSON_Z = 1.959963984540054   # two-sided 95 %

Pair = tuple[str, int]         # (task, seed)
Report = Callable[[tuple], None]


class WorkerError(RuntimeError):
    """A worker process failed or died; the message names the worker, the task and the seeds."""


@dataclass(frozen=True)
class Episode:
    task: str
    seed: int
    instruction: str
    success: bool
    steps: int                          # env steps taken (to success, or EPISODE_STEPS)
    total_reward: float                 # dense reward summed: a fingerprint of the whole trajectory

    @property
    def steps_to_success(self) -> int | None:
        return self.steps if self.success else None


@dataclass(frozen=True)
class Job:
    """One worker's share: a chunk of (task, seed) pairs and what it needs to run them."""
    bundle: str
    pairs: tuple[Pair, ...]
    image_size: tuple[int, int]
    instruction: str | None = None
    video_dir: str | None = None


@dataclass(frozen=True)
class TaskSummary:
    task: str
    successes: int
    episodes: int
    mean_steps_to_success: float | None
    instruction: str

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)


# --- checks -------------------------------------------------------------------------------------------

def check_tasks(names: Sequence[str]) -> list[str]:
    """Task names for evaluation ('all' = every downstream task); ValueError naming the choices if unknown."""
    if list(names) == ['all']:
        return list(sim.DOWNSTREAM_TASK_NAMES)
    unknown = [n for n in names if n not in sim.DOWNSTREAM_TASK_NAMES]
    if unknown:
        raise ValueError(f'unknown task {unknown[0]!r}; choose one of {", ".join(sim.DOWNSTREAM_TASK_NAMES)} or all')
    return list(dict.fromkeys(names))


def check_bundle(bundle: str | Path, instruction: str | None = None) -> Manifest:
    """The bundle's manifest if the sim can feed it (BundleError/ValueError naming the problem if not).

    The sim provides only sim.STATE_KEYS; a policy that wants more (e.g. the orientation) cannot be
    evaluated here rather than be fed made-up values. The runtime is loaded once here too, so a bundle
    onnxruntime rejects is bad input, not a failed worker.
    """
    from models.runtime import PolicyRuntime       # onnxruntime: not for the other lamp-sim commands
    manifest = read_manifest(Path(bundle))
    missing = [k for k in manifest.state_keys if k not in sim.STATE_KEYS]
    if missing:
        raise ValueError(f'bundle {bundle}: state key {missing[0]!r} is not provided by the sim '
                         f'(it gives {", ".join(sim.STATE_KEYS)})')
    unknown = [c for c in manifest.cameras if c not in CAMERAS]
    if unknown:
        raise ValueError(f'bundle {bundle}: camera {unknown[0]!r} is not in the sim (it has {", ".join(CAMERAS)})')
    h, w = manifest.image_size
    if not (1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
        raise ValueError(f'bundle {bundle}: image size {h}x{w} is outside 1..{MAX_IMAGE_SIDE}')
    runtime = PolicyRuntime.load(bundle)
    if instruction is not None:
        runtime.embed_instruction(instruction)
    return manifest


def untrained_tasks(manifest: Manifest, tasks: Sequence[str]) -> list[str]:
    """Tasks asked for that the bundle records it was not trained for (none if it records no tasks)."""
    return [t for t in tasks if manifest.tasks and t not in manifest.tasks]


# --- planning -----------------------------------------------------------------------------------------

def plan(tasks: Sequence[str], episodes: int, seed_base: int = HELD_OUT_SEED_BASE) -> list[Pair]:
    """Every (task, seed) to run: the same seeds for every task, so tasks see comparable scene draws."""
    return [(task, seed_base + k) for task in tasks for k in range(episodes)]


def split(pairs: Sequence[Pair], workers: int) -> list[tuple[Pair, ...]]:
    """Contiguous chunks of near-equal size, at most `workers` of them, none empty."""
    n = max(1, min(workers, len(pairs)))
    bounds = [round(i * len(pairs) / n) for i in range(n + 1)]
    return [tuple(pairs[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]


def describe(pairs: Sequence[Pair]) -> str:
    """'push_button seeds 5-7, turn_tap seed 5': the pairs of a chunk, for error messages."""
    by_task: dict[str, list[int]] = {}
    for task, seed in pairs:
        by_task.setdefault(task, []).append(seed)
    parts = []
    for task, seeds in by_task.items():
        contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
        span = f'{seeds[0]}-{seeds[-1]}' if contiguous else ','.join(map(str, seeds))
        parts.append(f'{task} seed {seeds[0]}' if len(seeds) == 1 else f'{task} seeds {span}')
    return ', '.join(parts)


# --- the worker side ----------------------------------------------------------------------------------

def state_index(manifest: Manifest) -> np.ndarray:
    """Positions of the bundle's state keys in the sim's state vector (the policy node's state_vector)."""
    return np.array([sim.STATE_KEYS.index(k) for k in manifest.state_keys], dtype=np.intp)


def run_episode(env: Any, runtime: Any, seed: int, instruction: str | None, embed: Callable[[str], np.ndarray],
                index: np.ndarray, frames: list[np.ndarray] | None = None) -> Episode:
    """One episode played by the runtime until success or EPISODE_STEPS (the env terminates on success)."""
    obs, info = env.reset(seed=seed)
    text = instruction or info['instruction']
    embedding = embed(text)
    runtime.reset()
    more_cameras = runtime.manifest.cameras[1:]
    steps, total, success, done = 0, 0.0, False, False
    while not done:
        if frames is not None:
            frames.append(env.unwrapped.view_frame(obs))
        action = runtime.act(obs['image_front'], obs['state'][index], embedding,
                             {c: obs[f'image_{c}'] for c in more_cameras})
        obs, reward, terminated, truncated, info = env.step(action)
        steps, total = steps + 1, total + float(reward)
        success = bool(info['success'])
        done = success or terminated or truncated
    if frames is not None:
        frames.append(env.unwrapped.view_frame(obs))
    return Episode(env.unwrapped.task_name, int(seed), text, success, steps, total)


def run_job(job: Job, report: Report) -> None:
    """A worker's loop: the runtime loaded once, one env per task, ('start', task, seed) before and
    ('done', Episode) after each episode, so the parent knows what a dying worker was running."""
    from models.runtime import PolicyRuntime       # onnxruntime: only in the process that runs the policy
    runtime = PolicyRuntime.load(job.bundle, threads=1)
    index = state_index(runtime.manifest)
    embeddings: dict[str, np.ndarray] = {}

    def embed(text: str) -> np.ndarray:
        if text not in embeddings:
            embeddings[text] = runtime.embed_instruction(text)
        return embeddings[text]

    envs: dict[str, Any] = {}
    try:
        for task, seed in job.pairs:
            report(('start', task, seed))
            if task not in envs:
                envs[task] = sim.make(task, image_size=job.image_size, randomize=True,
                                      cameras=tuple(dict.fromkeys((CAMERA, *runtime.manifest.cameras))),
                                      render_scale=render_scale(max(job.image_size)), max_episode_steps=EPISODE_STEPS,
                                      terminate_on_success=True)
            frames: list[np.ndarray] | None = [] if job.video_dir else None
            episode = run_episode(envs[task], runtime, seed, job.instruction, embed, index, frames)
            if frames:
                from lamp_ros.video import write_video     # H.264, as every video of the project
                write_video(Path(job.video_dir) / f'{task}_seed{seed}.mp4', frames, fps=10.0)
            report(('done', episode))
    finally:
        for env in envs.values():
            env.close()


def _worker_main(conn: multiprocessing.connection.Connection, job: Job, worker: Callable[[Job, Report], None]) -> None:
    """Process entry point: run the job, turn an exception into a one-line ('error', text) message.
    Ctrl-C is the parent's to handle (it stops the workers), not a traceback from every worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker(job, conn.send)
    except Exception as error:  # reported to the parent, which fails the whole evaluation
        conn.send(('error', ' '.join(f'{type(error).__name__}: {error}'.split())))
    finally:
        conn.close()


# --- the parent side ----------------------------------------------------------------------------------

class _Worker:
    """A worker process and what it has reported so far."""

    def __init__(self, number: int, job: Job, worker: Callable[[Job, Report], None], ctx: Any) -> None:
        self.number, self.job = number, job
        self.conn, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_worker_main, args=(send, job, worker), daemon=True,
                                   name=f'lamp-eval-worker-{number}')
        self.process.start()
        send.close()                          # the child holds the only write end: EOF when it exits
        self.running: Pair | None = None
        self.error: str | None = None
        self.episodes: list[Episode] = []

    def drain(self, on_episode: Callable[[Episode], None]) -> bool:
        """Read what has arrived; True once the worker has closed its end (finished or died)."""
        try:
            while self.conn.poll():
                self._handle(self.conn.recv(), on_episode)
        except (EOFError, OSError):
            self.process.join()
            return True
        return False

    def _handle(self, message: tuple, on_episode: Callable[[Episode], None]) -> None:
        kind = message[0]
        if kind == 'start':
            self.running = (message[1], message[2])
        elif kind == 'done':
            self.running = None
            self.episodes.append(message[1])
            on_episode(message[1])
        elif kind == 'error':
            self.error = message[1]

    def failure(self) -> str | None:
        """One line saying how the worker failed (None if it ran its whole share)."""
        where = f'while running {describe([self.running])}' if self.running else 'before its first episode'
        who = f'worker {self.number} (pid {self.process.pid}, share: {describe(self.job.pairs)})'
        code = self.process.exitcode
        if self.error:
            return f'{who} failed {where}: {self.error}'
        if code is not None and code < 0:
            return f'{who} was killed by {_signal_name(-code)} {where}'
        if code != 0 or len(self.episodes) != len(self.job.pairs):
            return f'{who} exited with code {code} after {len(self.episodes)} of {len(self.job.pairs)} episodes {where}'
        return None

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f'signal {number}'


def run_jobs(jobs: Sequence[Job], on_episode: Callable[[Episode], None] = lambda e: None,
             worker: Callable[[Job, Report], None] | None = None) -> list[Episode]:
    """Run each job in its own spawned process; WorkerError (the others stopped) as soon as one fails."""
    ctx = multiprocessing.get_context('spawn')          # no forked MuJoCo/EGL or onnxruntime state
    workers = [_Worker(i + 1, job, worker or run_job, ctx) for i, job in enumerate(jobs)]
    try:
        pending = list(workers)
        while pending:
            multiprocessing.connection.wait([w.conn for w in pending])
            for w in [w for w in pending if w.drain(on_episode)]:
                pending.remove(w)
                problem = w.failure()
                if problem:
                    raise WorkerError(problem)
    finally:
        for w in workers:
            w.stop()
    return [e for w in workers for e in w.episodes]


def collect_job(job: Job) -> list[Episode]:
    """run_job, its episodes returned (a Ray task: lamp_ros.scale.cluster.fan_out)."""
    episodes: list[Episode] = []
    run_job(job, lambda message: episodes.append(message[1]) if message[0] == 'done' else None)
    return episodes


def run_jobs_on_ray(jobs: Sequence[Job], on_episode: Callable[[Episode], None] = lambda e: None) -> list[Episode]:
    """Each job as a Ray task on the cluster `lamp_ros.scale.cluster.connect` joined (one CPU each)."""
    from lamp_ros.scale.cluster import fan_out_as_done
    episodes = []
    for _, chunk in fan_out_as_done(collect_job, jobs):     # a job's episodes as soon as it is done (progress)
        for episode in chunk:
            on_episode(episode)
        episodes += chunk
    return episodes


def evaluate(bundle: str | Path, manifest: Manifest, tasks: Sequence[str], episodes: int,
             seed_base: int = HELD_OUT_SEED_BASE, workers: int = 2, instruction: str | None = None,
             video_dir: Path | None = None, on_episode: Callable[[Episode], None] = lambda e: None,
             worker: Callable[[Job, Report], None] | None = None, on_ray: bool = False) -> list[Episode]:
    """Every (task, seed) episode, in plan order, whatever the number of workers; `on_ray`: `workers` Ray tasks on
    the cluster connected to, instead of local processes (each episode depends only on its (task, seed), so the
    results are the same)."""
    pairs = plan(tasks, episodes, seed_base)
    jobs = [Job(str(bundle), chunk, tuple(manifest.image_size), instruction, str(video_dir) if video_dir else None)
            for chunk in split(pairs, workers)]
    order = {pair: i for i, pair in enumerate(pairs)}
    done = run_jobs_on_ray(jobs, on_episode) if on_ray else run_jobs(jobs, on_episode, worker)
    return sorted(done, key=lambda e: order[(e.task, e.seed)])


# --- summaries ----------------------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """95 % Wilson score interval: unlike p +- z*se it stays inside [0, 1] and is honest at 0/n and n/n."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(episodes: Sequence[Episode], tasks: Sequence[str]) -> list[TaskSummary]:
    """Per task: successes, episodes, mean steps to success over the successful episodes."""
    rows = []
    for task in tasks:
        mine = [e for e in episodes if e.task == task]
        steps = [e.steps for e in mine if e.success]
        rows.append(TaskSummary(task, len(steps), len(mine), float(np.mean(steps)) if steps else None,
                                ' | '.join(dict.fromkeys(e.instruction for e in mine))))
    return rows


def mean_row(rows: Sequence[TaskSummary]) -> dict[str, Any]:
    """The mean over tasks: rate averaged over tasks (= pooled, as every task has the same episodes), its
    Wilson interval from the pooled counts, steps averaged over the tasks with a success."""
    successes, episodes = sum(r.successes for r in rows), sum(r.episodes for r in rows)
    steps = [r.mean_steps_to_success for r in rows if r.mean_steps_to_success is not None]
    low, high = wilson_interval(successes, episodes)
    return {'successes': successes, 'episodes': episodes, 'rate': float(np.mean([r.rate for r in rows])),
            'ci_low': low, 'ci_high': high, 'mean_steps_to_success': float(np.mean(steps)) if steps else None}


def _row_json(row: TaskSummary) -> dict[str, Any]:
    low, high = row.ci
    return {'successes': row.successes, 'episodes': row.episodes, 'rate': row.rate, 'ci_low': low,
            'ci_high': high, 'mean_steps_to_success': row.mean_steps_to_success, 'instruction': row.instruction}


def report_json(episodes: Sequence[Episode], tasks: Sequence[str], manifest: Manifest, bundle: str | Path,
                instruction: str | None, seed_base: int) -> dict[str, Any]:
    """The whole evaluation as one JSON-ready object (None for 'no successful episode'); the episodes too,
    so two evaluations can be compared scene by scene."""
    rows = summarize(episodes, tasks)
    return {'bundle': str(bundle), 'model_version': manifest.model_version, 'instruction': instruction,
            'seed_base': seed_base, 'tasks': {r.task: _row_json(r) for r in rows}, 'mean': mean_row(rows),
            'episodes': [{'task': e.task, 'seed': e.seed, 'success': e.success, 'steps': e.steps,
                          'total_reward': e.total_reward} for e in episodes]}


def _steps(value: float | None) -> str:
    return '-' if value is None else f'{value:.1f}'


def format_table(rows: Sequence[TaskSummary]) -> str:
    """Markdown: per task episodes, successes, rate, 95 % Wilson interval, mean steps to success; then the mean."""
    lines = ['| task | episodes | success | rate | 95% CI (Wilson) | steps to success (mean) |',
             '|---|---|---|---|---|---|']
    for r in rows:
        low, high = r.ci
        lines.append(f'| {r.task} | {r.episodes} | {r.successes}/{r.episodes} | {100 * r.rate:.0f}% | '
                     f'{100 * low:.0f}-{100 * high:.0f}% | {_steps(r.mean_steps_to_success)} |')
    m = mean_row(rows)
    lines.append(f"| **mean** | {m['episodes']} | {m['successes']}/{m['episodes']} | {100 * m['rate']:.0f}% | "
                 f"{100 * m['ci_low']:.0f}-{100 * m['ci_high']:.0f}% | {_steps(m['mean_steps_to_success'])} |")
    return '\n'.join(lines)
