"""Ray, the distributed engine: connecting to a cluster (or starting Ray here), simulated robots as Ray actors,
and fanning independent episodes out as Ray tasks.

    connect(None)               Ray on this machine (ray.init with its CPUs)
    connect('auto')             the cluster this machine belongs to (`ray start` ran here)
    connect('ray://HOST:10001') a remote cluster through the Ray Client
    connect('HOST:6379')        a cluster's head (GCS address), from a machine on its network

An address that does not answer is one line (ClusterUnreachable) within `timeout_s`, never a hang. Each actor
declares the CPUs it needs (`num_cpus`), and Ray restarts one that dies (`max_restarts`): its outbox is on the
node's disk under the same robot id, so the learner gets its unacknowledged chunks after the restart.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 15.0


class ClusterUnreachable(RuntimeError):
    """The Ray cluster at the given address could not be reached; the message says which and how long was tried."""


def _probe(address: str, timeout_s: float) -> None:
    """A TCP connect to HOST:PORT of a cluster address, so a dead address fails fast (Ray itself retries for
    minutes)."""
    parsed = urlparse(address if '://' in address else f'tcp://{address}')
    if not parsed.hostname or not parsed.port:
        raise ClusterUnreachable(f'--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT')
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s):
            pass
    except OSError as e:
        raise ClusterUnreachable(f'Ray cluster at {address} does not answer ({e.strerror or e}; '
                                 f'tried for up to {timeout_s:g} s)') from None


def connect(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S, num_cpus: int | None = None) -> dict[str, Any]:
    """Ray initialised for this process (once); returns the cluster's resources (CPU, GPU, node count)."""
    import ray
    if not ray.is_initialized():
        os.environ.setdefault('MUJOCO_GL', 'egl')                 # local workers inherit it: offscreen rendering
        env = {'env_vars': {'MUJOCO_GL': os.environ['MUJOCO_GL']}}   # a cluster's workers get it from the job
        if address in (None, '', 'local'):
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            if address != 'auto':
                _probe(address, timeout_s)
            try:
                ray.init(address=address, log_to_driver=False, runtime_env=env, configure_logging=False)
            except ConnectionError as e:
                raise ClusterUnreachable(f'Ray cluster at {address}: {str(e).splitlines()[0]}') from None
    resources = ray.cluster_resources()
    return {'cpus': resources.get('CPU', 0), 'gpus': resources.get('GPU', 0), 'nodes': len(ray.nodes())}


# --- simulated robots as actors ----------------------------------------------------------------------------

class SimRobotActor:
    """A SimRobot in a Ray actor process: episodes on request, statistics, the outbox drained before it stops."""

    def __init__(self, config: Any) -> None:
        """`config`: a SimRobotConfig (imported where the robot runs: sim is heavy)."""
        from lamp_ros.scale.sim_robot import SimRobot
        logging.basicConfig(level=logging.WARNING)
        self.robot = SimRobot(config)

    def run(self, episodes: int, explore_std: float | None = None) -> list[dict[str, Any]]:
        return [self.robot.run_episode(explore_std) for _ in range(episodes)]

    def stats(self) -> dict[str, Any]:
        import ray
        return {**self.robot.stats.as_dict(), 'backlog': self.robot.backlog, 'pid': os.getpid(),
                'node': ray.get_runtime_context().get_node_id()}

    def drain(self, timeout_s: float) -> int:
        """Wait until the learner acknowledged every chunk (or timeout); the backlog left."""
        deadline = time.monotonic() + timeout_s
        while self.robot.backlog and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.robot.backlog

    def close(self) -> None:
        self.robot.close()


@dataclass(frozen=True)
class FleetSpec:
    """N simulated robots of one task, each on `cpus_per_actor` CPUs of any node."""
    actors: int
    endpoint: str
    task: str
    work_dir: Path                          # robot i keeps its outbox and bundles in work_dir/sim-i
    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    episode_steps: int
    reward_source: str
    explore_std: float
    cpus_per_actor: float = 1.0
    explore_gripper: float = 0.0
    vlm_reward: Path | None = None          # pretraining: the R3M ONNX export the robots score r_VLM with
    vlm_image_size: int = 0


class Fleet:
    """The actors of a FleetSpec, each kept busy with one episode at a time; a dead actor's episode is simply
    not counted (Ray restarts the actor, which resends its backlog and goes on)."""

    def __init__(self, spec: FleetSpec) -> None:
        import ray
        self.spec = spec
        remote = ray.remote(num_cpus=spec.cpus_per_actor, max_restarts=-1, max_task_retries=0)(SimRobotActor)
        self.actors = [remote.remote(self.robot_config(i)) for i in range(spec.actors)]
        self.pending: dict[Any, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.episodes_lost = 0              # episodes an actor died in (Ray restarted it)

    def robot_config(self, index: int) -> Any:
        from lamp_ros.scale.sim_robot import SimRobotConfig
        s = self.spec
        return SimRobotConfig(endpoint=s.endpoint, robot_id=f'sim-{index}', task=s.task, index=index,
                              work_dir=Path(s.work_dir) / f'sim-{index}', cameras=tuple(s.cameras),
                              image_size=tuple(s.image_size), episode_steps=s.episode_steps,
                              reward_source=s.reward_source, explore_std=s.explore_std,
                              explore_gripper=s.explore_gripper, vlm_reward=s.vlm_reward,
                              vlm_image_size=s.vlm_image_size)

    def poll(self, timeout_s: float = 0.5, start: bool = True, explore_std: float | None = None
             ) -> list[dict[str, Any]]:
        """Start an episode on every idle actor (unless `start` is False: the learner is behind), with
        `explore_std` if given; the episodes that finished within timeout_s."""
        import ray
        from ray.exceptions import RayActorError
        for i, actor in enumerate(self.actors):
            if start and i not in self.pending.values():
                self.pending[actor.run.remote(1, explore_std)] = i
        if not self.pending:
            time.sleep(timeout_s)
            return []
        done, _ = ray.wait(list(self.pending), num_returns=1, timeout=timeout_s)
        finished = []
        for ref in done:
            index = self.pending.pop(ref)
            try:
                finished += [{**e, 'robot': index} for e in ray.get(ref)]
            except RayActorError as e:
                self.episodes_lost += 1
                log.warning('sim-%d unavailable (%s): Ray restarts it; its unacknowledged chunks are resent', index,
                            type(e).__name__)
        self.episodes += finished
        return finished

    def stop(self, drain_timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Let running episodes finish, wait for every chunk's acknowledgement; each actor's statistics."""
        import ray
        ray.wait(list(self.pending), num_returns=len(self.pending), timeout=drain_timeout_s)
        self.pending.clear()
        stats = ray.get([a.stats.remote() for a in self.actors])
        left = ray.get([a.drain.remote(drain_timeout_s) for a in self.actors])
        ray.get([a.close.remote() for a in self.actors])
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        return [{**s, 'backlog': b} for s, b in zip(stats, left)]


# --- fan-out of independent episodes ------------------------------------------------------------------------

def fan_out_as_done(function: Callable[[Any], Any], jobs: Sequence[Any], cpus: float = 1.0
                    ) -> Iterator[tuple[int, Any]]:
    """(index, function(job)) for every job, run as Ray tasks, in the order they finish. A task whose worker dies
    is retried by Ray (max_retries); one that raises raises here with its error."""
    import ray
    task = ray.remote(num_cpus=cpus, max_retries=2)(function)
    pending = {task.remote(job): i for i, job in enumerate(jobs)}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)


def fan_out(function: Callable[[Any], Any], jobs: Sequence[Any], cpus: float = 1.0) -> list[Any]:
    """function(job) for every job as Ray tasks, results in job order."""
    results = dict(fan_out_as_done(function, jobs, cpus))
    return [results[i] for i in range(len(jobs))]
