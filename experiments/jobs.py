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


def last_eval(run: Path) -> dict | None:
    evals = run / 'evals.json'
    rows = json.loads(evals.read_text()) if evals.is_file() else []
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


def run_jobs(jobs: list[Job], runs: Path, parallel: int) -> None:
    logs = runs / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'LP_NUM_THREADS': '1'}
    pending = [j for j in jobs if not j.finished(runs / j.name)]
    done = {j.name for j in jobs if j not in pending}
    running: dict[str, tuple[Job, subprocess.Popen]] = {}
    for job in jobs:
        if job.name in done:
            print(f'{job.name}: already finished ({runs / job.name})')
    while pending or running:
        for job in [j for j in pending if j.finished(runs / j.name) and not locked(runs / j.name)]:
            pending.remove(job)                                          # finished by another invocation
            done.add(job.name)
        for name, (job, process) in list(running.items()):
            if process.poll() is not None:
                del running[name]
                if process.returncode != 0:
                    raise SystemExit(f'{name} failed (exit {process.returncode}); see {logs / (name + ".log")}')
                if not job.finished(runs / name):
                    pending.append(job)                                  # its next chunk
                    continue
                done.add(name)
                print(f'{time.strftime("%H:%M:%S")} {name}: finished')
        elsewhere = [j for j in pending if locked(runs / j.name)]
        ready = [j for j in pending if all(n in done for n in j.needs) and j not in elsewhere]
        ready.sort(key=lambda j: j.name not in {n for other in pending for n in other.needs})  # gates first
        while ready and len(running) < parallel:
            job = ready.pop(0)
            pending.remove(job)
            steps = ['--steps', str(job.next_steps(runs / job.name))]
            command = [sys.executable, '-m', 'training.cli', *job.args, *steps, '--run-dir', str(runs / job.name)]
            if (runs / job.name / 'run.json').is_file():                 # resume: the saved config is authoritative
                command = [sys.executable, '-m', 'training.cli', job.args[0], '--run-dir', str(runs / job.name),
                           *steps]
            log = open(logs / f'{job.name}.log', 'ab')
            running[job.name] = (job, subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log))
            print(f'{time.strftime("%H:%M:%S")} {job.name}: started, log {logs / (job.name + ".log")}')
        if not running and pending and not elsewhere:
            raise SystemExit(f'cannot start {[j.name for j in pending]}: their prerequisites did not finish')
        time.sleep(10)
