"""`lamp-train finetune --actors N [--ray-address ADDR]`: sim finetuning by the online learner (learner.py) fed by
N simulated robots on Ray (lamp_ros/scale), instead of lamp-train's one-process loop. The robots speak the link a
real arm's actor node speaks, so a real arm can join the same learner (`--learner tcp://HOST:PORT`).

    RUN/                        the learner's run (learner.py's layout; resumed by the same command)
    RUN/expert_demos/           finetune.demo_episodes scripted-expert episodes of the task: the demo buffer
    RUN/sim_robots/sim-I/       robot I's outbox and bundles (on the node that runs it)
    RUN/evals.json              every eval_every env steps: the newest bundle on eval_episodes held-out scenes
                                (onnxruntime, Ray tasks), as lamp-train's evals.json
    RUN/fleet.json              the cluster, each robot's statistics, env steps, steps/s, learner updates

Env steps count the robots' finished episodes. Without --ray-address Ray runs on this machine. The robots keep to
the run's update-to-data ratio (updates_per_step / update_every, as lamp-train's loop): one robot outruns a CPU
learner tenfold (docs/scale.md), so no robot starts an episode while the learner's updates lag the robots' steps
by more than an episode per robot.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lamp_ros.fileio import atomic_write_text
from lamp_ros.learner.learner import Learner, LearnerOptions
from lamp_ros.link.learner_server import LinkFailed
from lamp_ros.scale.cluster import Fleet, FleetSpec, connect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetRequest:
    run_dir: Path
    task: str
    actors: int
    steps: int                              # env steps of the robots in total (a resumed run counts its earlier)
    init_run: Path | None = None
    preset: str = 'cpu'
    settings: tuple[str, ...] = ()
    ray_address: str | None = None
    device: str = 'cpu'
    threads: int = 1
    cpus_per_actor: float = 1.0


def run_fleet(request: FleetRequest) -> dict[str, Any]:
    """Finetune until the robots have taken request.steps env steps; fleet.json's content."""
    if request.actors < 1:
        raise ValueError(f'--actors must be >= 1, got {request.actors}')
    cluster = connect(request.ray_address)
    remote = request.ray_address not in (None, '', 'local')
    learner = Learner(LearnerOptions(Path(request.run_dir), init_run=request.init_run, preset=request.preset,
                                     settings=request.settings, bind='tcp://0.0.0.0:*' if remote else
                                     'tcp://127.0.0.1:*', device=request.device, threads=request.threads))
    root = learner.root
    config = learner.config
    ratio = learner.updates_per_transition = config.updates_per_step / config.update_every   # as lamp-train's loop
    if config.finetune.demo_episodes:
        learner.import_demos(expert_demos(root / 'expert_demos', request.task, config.finetune.demo_episodes,
                                          config.agent.image_size, config.env.episode_steps))
    record = _read_json(root / 'fleet.json', {'env_steps': 0, 'wall_s': 0.0})
    fleet = Fleet(FleetSpec(request.actors, _reachable(learner.server.endpoint, remote), request.task,
                            root / 'sim_robots', learner.cameras, (config.agent.image_size,) * 2,
                            config.env.episode_steps, config.finetune.reward, config.finetune.explore_std,
                            request.cpus_per_actor))
    stop = threading.Event()
    trainer = threading.Thread(target=learner.run, args=(stop,), name='learner', daemon=True)
    trainer.start()
    start, steps_before = time.monotonic(), record['env_steps']
    evals = _read_json(root / 'evals.json', [])
    try:
        with tqdm(total=request.steps, initial=steps_before, unit='step', desc=f'fleet finetune {request.task}',
                  disable=None) as bar:
            slack = request.actors * config.env.episode_steps
            while steps_before + _env_steps(fleet) < request.steps:
                behind = learner.counters.updates < ratio * (steps_before + _env_steps(fleet)) - slack
                fleet.poll(start=not behind)
                bar.update(steps_before + _env_steps(fleet) - bar.n)
                if not trainer.is_alive():
                    raise LinkFailed('the learner stopped: see the log above')
                if steps_before + _env_steps(fleet) >= (len(evals) + 1) * config.eval_every:
                    evals.append(evaluate_newest(root, request.task, config.eval_episodes, steps_before +
                                                 _env_steps(fleet), learner.counters.updates))
                    atomic_write_text(root / 'evals.json', json.dumps(evals, indent=1) + '\n')
    finally:
        robots = fleet.stop()
        stop.set()
        trainer.join()
        learner.checkpoint()
        learner.close()
    wall = time.monotonic() - start
    record = {'task': request.task, 'actors': request.actors, 'cluster': cluster,
              'env_steps': steps_before + _env_steps(fleet), 'wall_s': record['wall_s'] + wall,
              'env_steps_per_s': _env_steps(fleet) / wall, 'updates': learner.counters.updates,
              'episodes': len(fleet.episodes), 'successes': sum(e['success'] for e in fleet.episodes),
              'episodes_lost': fleet.episodes_lost, 'robots': robots}
    atomic_write_text(root / 'fleet.json', json.dumps(record, indent=1) + '\n')
    return record


def _env_steps(fleet: Fleet) -> int:
    return sum(e['steps'] for e in fleet.episodes)


def _reachable(endpoint: str, remote: bool) -> str:
    """The learner's bound endpoint as the robots reach it: on a cluster, this node's address."""
    if not remote:
        return endpoint
    import ray
    return endpoint.replace('0.0.0.0', ray.util.get_node_ip_address())


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.is_file() else default


def expert_demos(directory: Path, task: str, episodes: int, image_size: int, episode_steps: int) -> Path:
    """The task's scripted-expert episodes (recorded once; lamp-sim record-demos' files), ending at success."""
    from sim.cli import record_demos
    record_demos([task], episodes, directory, image_size, seed=0, after_success=0, max_steps=episode_steps,
                 paraphrase=False, progress=False)
    return directory


def evaluate_newest(root: Path, task: str, episodes: int, env_steps: int, updates: int) -> dict[str, Any]:
    """The newest bundle on held-out scenes (lamp-sim eval-bundle's episodes): spread over the cluster's idle CPUs,
    or in 2 processes here when the robots hold every CPU."""
    import ray
    from sim import evaluation
    bundle, manifest = newest_bundle(root / 'bundles')
    free = int(ray.available_resources().get('CPU', 0))      # the robots hold theirs: idle CPUs, else this host's
    episodes_run = evaluation.evaluate(bundle, manifest, [task], episodes, workers=min(max(free, 2), 8),
                                       on_ray=free >= 1)
    successes = sum(e.success for e in episodes_run)
    log.info('%s at %d env steps: %d/%d held-out successes', bundle.name, env_steps, successes, len(episodes_run))
    return {'step': env_steps, 'success_rate': successes / len(episodes_run), 'episodes': len(episodes_run),
            'bundle': bundle.name, 'updates': updates}


def newest_bundle(directory: Path) -> tuple[Path, Any]:
    """The newest bundle that checks out complete (the learner may be writing the one after it)."""
    from sim import evaluation
    for bundle in sorted(directory.glob('v*'), reverse=True):
        try:
            return bundle, evaluation.check_bundle(bundle)
        except (ValueError, FileNotFoundError):
            continue
    raise FileNotFoundError(f'no complete policy bundle in {directory}')
