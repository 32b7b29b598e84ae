"""Running many `lamp-train` runs on one machine, resumably: a job per run directory, started when its
prerequisites have finished, `parallel` at once, each a subprocess on one torch thread with its own log. A run
another process is training (it holds RUN/lock) is waited for; a finished run (its last evaluation at the job's
step budget, or at its stop_at success rate) is skipped, an unfinished one resumes from its newest checkpoint with
its saved config. A job with `chunk` runs `chunk` env steps per invocation and stops early at `stop_at`."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = (sys.executable, '-m', 'training.cli')
ONE_THREAD = {'OMP_NUM_THREADS': '1', 'LP_NUM_THREADS': '1'}       # one run per core


@dataclass
class Job:
    name: str
    args: list[str]
    steps: int
    needs: list[str] = field(default_factory=list)
    stop_at: float | None = None       # done once an evaluation reaches this success rate ...
    chunk: int | None = None           # ... checked after every `chunk` env steps (the run resumes for the next)

    def finished(self, run: Path) -> bool:
        last = last_eval(run)
        return last is not None and (last['step'] >= self.steps or
                                     (self.stop_at is not None and last['success_rate'] >= self.stop_at))

    def next_steps(self, run: Path) -> int:
        """The --steps of the next invocation: the budget, or the next chunk of it."""
        if self.chunk is None:
            return self.steps
        last = last_eval(run)
        return min(self.steps, (last['step'] if last else 0) + self.chunk)


def read_evals(run: Path) -> list[dict]:
    """A run's evaluation history (RUN/evals.json), oldest first; empty before its first evaluation."""
    path = run / 'evals.json'
    return json.loads(path.read_text()) if path.is_file() else []


def last_eval(run: Path) -> dict | None:
    rows = read_evals(run)
    return rows[-1] if rows else None


def locked(run: Path) -> bool:
    """True while another process trains the run (it holds RUN/lock): then this script waits for it."""
    if not (run / 'lock').is_file():
        return False
    with open(run / 'lock', 'a+') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@dataclass
class Scheduler:
    """The loop state of run_jobs: which jobs wait, run and are done."""
    runs: Path
    parallel: int
    program: tuple[str, ...] = TRAIN                # what runs a job: lamp-train's CLI (tests give a stand-in)
    poll_s: float = 10.0
    pending: list[Job] = field(default_factory=list)
    running: dict[str, tuple[Job, subprocess.Popen]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.logs = self.runs / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)

    def run(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.finished(self.runs / job.name):
                self.done.add(job.name)
                print(f'{job.name}: already finished ({self.runs / job.name})')
            else:
                self.pending.append(job)
        while self.pending or self.running:
            self.collect_finished()
            elsewhere = [j for j in self.pending if locked(self.runs / j.name)]
            self.start_ready(elsewhere)
            if not self.running and self.pending and not elsewhere:
                raise SystemExit(f'cannot start {[j.name for j in self.pending]}: their prerequisites did not finish')
            time.sleep(self.poll_s)

    def collect_finished(self) -> None:
        """Jobs another invocation finished, and processes of ours that exited (a chunk: the job waits again)."""
        for job in [j for j in self.pending if j.finished(self.runs / j.name) and not locked(self.runs / j.name)]:
            self.pending.remove(job)
            self.done.add(job.name)
        for name, (job, process) in list(self.running.items()):
            if process.poll() is None:
                continue
            del self.running[name]
            if process.returncode != 0:
                raise SystemExit(f'{name} failed (exit {process.returncode}); see {self.logs / (name + ".log")}')
            if job.finished(self.runs / name):
                self.done.add(name)
                print(f'{time.strftime("%H:%M:%S")} {name}: finished')
            else:
                self.pending.append(job)                                 # its next chunk, after the others'

    def start_ready(self, elsewhere: list[Job]) -> None:
        """Start jobs whose prerequisites are done, up to `parallel`; jobs others need go first."""
        gates = {n for other in self.pending for n in other.needs}
        ready = [j for j in self.pending if all(n in self.done for n in j.needs) and j not in elsewhere]
        ready.sort(key=lambda j: j.name not in gates)
        while ready and len(self.running) < self.parallel:
            job = ready.pop(0)
            self.pending.remove(job)
            log = open(self.logs / f'{job.name}.log', 'ab')
            self.running[job.name] = (job, subprocess.Popen(self.command(job), cwd=REPO,
                                                            env={**os.environ, **ONE_THREAD}, stdout=log, stderr=log))
            print(f'{time.strftime("%H:%M:%S")} {job.name}: started, log {self.logs / (job.name + ".log")}')

    def command(self, job: Job) -> list[str]:
        """A new run gets the job's arguments; a resumed one only its subcommand (its saved config rules)."""
        run = self.runs / job.name
        steps = ['--steps', str(job.next_steps(run))]
        if (run / 'run.json').is_file():
            return [*self.program, job.args[0], '--run-dir', str(run), *steps]
        return [*self.program, *job.args, *steps, '--run-dir', str(run)]


def run_jobs(jobs: list[Job], runs: Path, parallel: int) -> None:
    Scheduler(runs, parallel).run(jobs)
