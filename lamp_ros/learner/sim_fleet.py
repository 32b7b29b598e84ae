"""`lamp-train finetune|pretrain --actors N [--ray-address ADDR]`: sim training by the online learner (learner.py)
fed by N simulated robots on Ray (lamp_ros/scale), instead of lamp-train's one-process loop. The robots speak the
link a real arm's actor node speaks, so a real arm can join the same learner (`--learner tcp://HOST:PORT`).
Pretraining (`reward_checkpoint`): the robots step the pretraining scene, a new instruction each episode, score
r_VLM with the R3M ONNX export in RUN/vlm_reward/ and explore with the agent's decaying std; the learner adds
novelty. Its evaluations: the newest bundle on every downstream task.

    RUN/                        the learner's run (learner.py's layout; resumed by the same command)
    RUN/expert_demos/           finetune.demo_episodes scripted-expert episodes of the task: the demo buffer
    RUN/vlm_reward/             pretraining: the R3M checkpoint as ONNX (checked against torch), for the robots
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
    reward_checkpoint: Path | None = None   # pretraining (task 'pretrain'): LAMP's reward from this R3M checkpoint


def run_fleet(request: FleetRequest) -> dict[str, Any]:
    """Finetune until the robots have taken request.steps env steps; fleet.json's content."""
    if request.actors < 1:
        raise ValueError(f'--actors must be >= 1, got {request.actors}')
    cluster = connect(request.ray_address)
    remote = request.ray_address not in (None, '', 'local')
    pretraining = request.reward_checkpoint is not None
    if pretraining != (request.task == 'pretrain'):
        raise ValueError(f'task {request.task!r}: pretraining (task pretrain) and only it needs a reward checkpoint')
    learner = Learner(LearnerOptions(Path(request.run_dir), init_run=request.init_run, preset=request.preset,
                                     settings=request.settings, bind='tcp://0.0.0.0:*' if remote else
                                     'tcp://127.0.0.1:*', device=request.device, threads=request.threads,
                                     reward_checkpoint=request.reward_checkpoint))
    root = learner.root
    config = learner.config
    ratio = learner.updates_per_transition = config.updates_per_step / config.update_every   # as lamp-train's loop
    if config.finetune.demo_episodes and not pretraining:
        learner.import_demos(expert_demos(root / 'expert_demos', request.task, config.finetune.demo_episodes,
                                          config.agent.image_size, config.env.episode_steps))
    record = _read_json(root / 'fleet.json', {'env_steps': 0, 'wall_s': 0.0})
    fleet = Fleet(_fleet_spec(request, learner, _reachable(learner.server.endpoint, remote)))
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
                fleet.poll(start=not behind, explore_std=config.agent.std(learner.counters.updates)
                           if pretraining else None)
                bar.update(steps_before + _env_steps(fleet) - bar.n)
                if not trainer.is_alive():
                    raise LinkFailed('the learner stopped: see the log above')
                if steps_before + _env_steps(fleet) >= (len(evals) + 1) * config.eval_every:
                    evals.append(evaluate_newest(root, _eval_tasks(request.task), config.eval_episodes,
                                                 steps_before + _env_steps(fleet), learner.counters.updates))
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


def _fleet_spec(request: FleetRequest, learner: Learner, endpoint: str) -> FleetSpec:
    """The robots a run needs: finetuning's (its reward source, constant noise on the motion) or pretraining's
    (the pretraining scene, r_VLM from the ONNX export, the agent's noise schedule on every action dimension)."""
    config, root = learner.config, learner.root
    common = dict(actors=request.actors, endpoint=endpoint, task=request.task, work_dir=root / 'sim_robots',
                  cameras=learner.cameras, image_size=(config.agent.image_size,) * 2,
                  episode_steps=config.env.episode_steps, cpus_per_actor=request.cpus_per_actor)
    if request.reward_checkpoint is None:
        return FleetSpec(**common, reward_source=config.finetune.reward, explore_std=config.finetune.explore_std)
    vlm = vlm_reward_export(root / 'vlm_reward', Path(request.reward_checkpoint), config.reward.image_size or
                            config.agent.image_size)
    return FleetSpec(**common, reward_source='r3m', explore_std=config.agent.std(learner.counters.updates),
                     explore_gripper=config.agent.gripper_noise, vlm_reward=vlm,
                     vlm_image_size=config.reward.image_size)


def vlm_reward_export(directory: Path, checkpoint: Path, image_size: int) -> Path:
    """The R3M checkpoint as the robots' ONNX reward (models/r3m/onnx_export.py, checked against torch at the size
    the robots score), made once per run."""
    from models.r3m.onnx_export import export_onnx
    from models.r3m.reward import R3MReward
    if not (directory / 'manifest.json').is_file():
        export_onnx(R3MReward.load(checkpoint), directory, verify_sizes=(image_size,))
    return directory


def _eval_tasks(task: str) -> list[str]:
    """What a bundle is evaluated on: its task, or after pretraining every downstream task."""
    from sim import DOWNSTREAM_TASK_NAMES
    return list(DOWNSTREAM_TASK_NAMES) if task == 'pretrain' else [task]


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


def evaluate_newest(root: Path, tasks: list[str], episodes: int, env_steps: int, updates: int) -> dict[str, Any]:
    """The newest bundle on held-out scenes of each task (lamp-sim eval-bundle's episodes): spread over the
    cluster's idle CPUs, or in 2 processes here when the robots hold every CPU."""
    import ray
    from sim import evaluation
    bundle, manifest = newest_bundle(root / 'bundles')
    free = int(ray.available_resources().get('CPU', 0))      # the robots hold theirs: idle CPUs, else this host's
    episodes_run = evaluation.evaluate(bundle, manifest, tasks, episodes, workers=min(max(free, 2), 8),
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
