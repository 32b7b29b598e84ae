"""experiments/jobs.py, the runner of the long experiments, with a stand-in for lamp-train: prerequisites first,
chunks that resume until the budget or the stop rate, finished runs skipped, a failed run named."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from experiments.jobs import Job, Scheduler

STAND_IN = '''
import json, sys
from pathlib import Path
argv = sys.argv[1:]
run, steps = Path(argv[argv.index('--run-dir') + 1]), int(argv[argv.index('--steps') + 1])
with open(run.parent / 'calls.jsonl', 'a') as calls:
    calls.write(json.dumps(argv) + '\\n')
if 'fail' in argv:
    raise SystemExit(3)
run.mkdir(exist_ok=True)
(run / 'run.json').write_text('{}')
evals = json.loads((run / 'evals.json').read_text()) if (run / 'evals.json').is_file() else []
evals.append({'step': steps, 'success_rate': steps / 400})     # 0.625 at 250 env steps, 1.25 at 500
(run / 'evals.json').write_text(json.dumps(evals))
'''


def scheduler(tmp_path: Path) -> Scheduler:
    script = tmp_path / 'stand_in.py'
    script.write_text(STAND_IN)
    return Scheduler(tmp_path / 'runs', parallel=2, program=(sys.executable, str(script)), poll_s=0.05)


def calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / 'runs' / 'calls.jsonl').read_text().splitlines()]


def test_prerequisites_run_first_and_chunked_jobs_resume_until_their_stop_rate(tmp_path):
    jobs = [Job('finetune', ['finetune', '--seed', '1'], 1000, needs=['pretrain'], stop_at=0.8, chunk=250),
            Job('pretrain', ['pretrain'], 100)]
    scheduler(tmp_path).run(jobs)
    made = calls(tmp_path)
    assert made[0][0] == 'pretrain' and all(call[0] == 'finetune' for call in made[1:])
    assert made[1] == ['finetune', '--seed', '1', '--steps', '250', '--run-dir', str(tmp_path / 'runs/finetune')]
    assert made[2] == ['finetune', '--run-dir', str(tmp_path / 'runs/finetune'), '--steps', '500'], \
        'a resumed run gets only its subcommand: its saved config rules'
    assert len(made) == 3, 'stopped at its first evaluation at the stop rate, not at the budget'
    scheduler(tmp_path).run(jobs)
    assert len(calls(tmp_path)) == 3, 'finished runs are skipped on the next invocation'


def test_a_failed_run_stops_the_runner_with_its_log_named(tmp_path):
    with pytest.raises(SystemExit, match=r'broken failed \(exit 3\); see .*broken\.log'):
        scheduler(tmp_path).run([Job('broken', ['finetune', 'fail'], 100)])


def test_a_job_whose_prerequisite_is_unknown_is_refused(tmp_path):
    with pytest.raises(SystemExit, match='prerequisites did not finish'):
        scheduler(tmp_path).run([Job('orphan', ['finetune'], 100, needs=['missing'])])
