"""The online learner: robots' transitions in (pyzmq link), agent updates, new policy bundles out.

    RUN/learner.json      how the run was made: init run (a `lamp-train` run) or preset, text encoder
    RUN/config.yaml       the training config (training/config.py), resolved for finetuning
    RUN/checkpoints/      agent + optimizers + learner counters (training/checkpoint.py); resume from the newest
    RUN/incoming/         chunks as they arrive, until their episode is complete (chunk_store.py)
    RUN/replay/           complete episodes in the training replay format (training/replay.py)
    RUN/bundles/vNNNN/    every policy bundle pushed to the robots

Why it looks like this: a chunk is on disk before it is acknowledged, so a learner killed at any moment loses
nothing a robot considers delivered; the robot resends the rest. Training (the agent, torch) runs in the
caller's thread, storing in the link's thread: a slow update never delays an acknowledgement. Updates are
bounded by `updates_per_transition` so a learner with few transitions does not overfit them while it waits.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_ros.contract import DEFAULT_CONTROL_RATE_HZ
from lamp_ros.fileio import atomic_write_text
from lamp_ros.learner.chunk_store import ChunkStore
from lamp_ros.learner.demos import import_demos
from lamp_ros.link import keys as curve_keys
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from training.agent import DrQAgent
from training.export import export_bundle
from sim import STATE_KEYS
from training import text
from training.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from training.config import TrainConfig, dump_yaml, load_yaml, preset
from training.loop import run_hash
from training.replay import EpisodeReplay
from training.run import read_run
from training.runs import init_state_bounds, resolve_finetune
from training.text import InstructionEmbedder

log = logging.getLogger(__name__)
INFO_FILE = 'learner.json'


class LearnerError(ValueError):
    """The learner cannot start as asked (bad run directory, init run or keys); the message says why."""


@dataclass(frozen=True)
class LearnerOptions:
    run_dir: Path
    init_run: Path | None = None            # a lamp-train run (pretrain or finetune) to start from
    preset: str = 'cpu'                     # from scratch: training/config.py presets (debug, cpu, paper)
    bind: str = 'tcp://127.0.0.1:5555'      # where robots connect; tcp://0.0.0.0:5555 for other hosts
    keys_dir: Path | None = None            # CurveZMQ: learner.key_secret + authorized/ (lamp-ros keys DIR)
    bundle_every: int = 200                 # agent updates between policy bundles
    checkpoint_every: int = 500             # agent updates between checkpoints
    updates_per_transition: float = 1.0     # at most this many updates per stored transition
    min_transitions: int = 0                # no updates before this many (0: one batch of windows)
    demos_dir: Path | None = None           # recorded episodes (lamp-ros record) to add to the replay, once each
    device: str = 'cpu'
    threads: int = 1


@dataclass
class Counters:
    updates: int = 0
    bundle_version: int = 0                 # 0: not pushed yet


class Learner:
    def __init__(self, options: LearnerOptions) -> None:

        self.options = options
        self.root = Path(options.run_dir).expanduser()
        torch.set_num_threads(options.threads)
        self.config, info = _open_or_create(self.root, options)
        self.source = text.TextEncoderSource.from_json(info['text_encoder'])
        if tuple(self.config.agent.cameras) != ('front',):
            raise LearnerError(f'the robot sends the front camera only; this agent takes {self.config.agent.cameras}')
        self.agent = DrQAgent(self.config.agent, seed=self.config.seed, device=options.device)
        self._hash = run_hash(self.config)
        checkpoint = latest_checkpoint(self.root)
        payload = load_checkpoint(checkpoint, self.agent, self._hash)
        self.counters = Counters(**payload['trainer'].get('learner', {}))
        self.rng = np.random.default_rng(self.config.seed + self.counters.updates)
        self.text_encoder, self.vocab = text.load(self.source)
        self.embedder = InstructionEmbedder(self.text_encoder, self.vocab, self.config.text.max_tokens)
        self.replay = EpisodeReplay(self.root / 'replay', self.config.replay.capacity,
                                    self.config.replay.memory_episodes, ('front',), self.config.agent.n_step)
        self._replay_lock = threading.Lock()
        self.store = ChunkStore(self.root / 'incoming', self._add_episode, self.embedder,
                                self.config.agent.image_size, STATE_KEYS)
        if options.demos_dir is not None:
            added = import_demos(Path(options.demos_dir).expanduser(), self.root, self.store, self._add_episode)
            log.info('%d recorded episodes from %s added to the replay', added, options.demos_dir)
        self.server = LinkServer(_server_config(options), self.store.store, self.store.is_stored)
        self._last_push = 0.0
        self.metrics: dict[str, float] = {}
        log.info('learner %s: %d episodes (%d transitions) in replay, %d updates, bundle v%d; listening on %s%s',
                 self.root, len(self.replay.episodes), self.replay.transitions, self.counters.updates,
                 self.counters.bundle_version, options.bind, ' (CurveZMQ)' if options.keys_dir else '')

    # --- storing (link thread) --------------------------------------------------------------------------
    def _add_episode(self, episode: dict[str, np.ndarray]) -> None:
        with self._replay_lock:
            if len(episode['action']) <= self.replay.n_step:
                log.warning('episode of %d steps is too short to learn from (n_step %d): kept out of the replay',
                            len(episode['action']), self.replay.n_step)
                return
            self.replay.add(episode, end_step=self.replay.transitions + len(episode['action']))

    # --- status ---------------------------------------------------------------------------------------
    @property
    def version_name(self) -> str:
        return f'{self.root.name}-v{self.counters.bundle_version:04d}'

    def status(self) -> dict[str, Any]:
        return {'updates': self.counters.updates, 'bundle_version': self.version_name,
                'transitions_stored': self.store.transitions_stored, 'episodes': len(self.replay.episodes),
                'replay_transitions': self.replay.transitions, 'duplicates': self.server.duplicates,
                'robots': sorted(self.server.robots), **{f'train/{k}': v for k, v in self.metrics.items()}}

    # --- training (caller's thread) -------------------------------------------------------------------
    def run(self, stop: threading.Event, max_updates: int | None = None) -> None:
        """Train until `stop` is set (or max_updates more updates); push bundles as configured."""
        if self.counters.bundle_version == 0:
            self.publish_bundle()
        target = None if max_updates is None else self.counters.updates + max_updates
        while not stop.is_set() and (target is None or self.counters.updates < target):
            self._offer_bundle_to_new_robots()
            if not self._can_update():
                stop.wait(0.05)
                continue
            with self._replay_lock:
                batch = self.replay.sample(self.config.batch_size, self.rng)
            self.metrics = self.agent.update(batch)
            self.counters.updates += 1
            if self.counters.updates % self.options.bundle_every == 0:
                self.publish_bundle()
            if self.counters.updates % self.options.checkpoint_every == 0:
                self.checkpoint()

    def _can_update(self) -> bool:
        transitions = self.replay.transitions
        needed = max(self.options.min_transitions, self.config.batch_size // 4 + self.replay.n_step, 1)
        return (transitions >= needed
                and self.counters.updates < self.options.updates_per_transition * transitions)

    def publish_bundle(self) -> Path:
        """Export the current policy (verified against torch) and push it to the robots."""

        self.counters.bundle_version += 1
        out = self.root / 'bundles' / f'v{self.counters.bundle_version:04d}'
        if out.exists():
            shutil.rmtree(out)                 # left by a learner killed before its checkpoint
        start = time.perf_counter()
        export_bundle(self.agent.exportable_policy(), self.text_encoder, self.vocab, out,
                      model_version=self.version_name, state_keys=STATE_KEYS,
                      image_size=self.config.agent.image_size, max_text_length=self.config.text.max_tokens,
                      control_rate_hz=DEFAULT_CONTROL_RATE_HZ)
        robots = self.server.push_bundle(out, self.version_name)
        self._last_push = time.monotonic()
        log.info('bundle %s after %d updates: exported in %.2f s, pushed to %d robot(s)', self.version_name,
                 self.counters.updates, time.perf_counter() - start, robots)
        self.checkpoint()                      # the version number is never reused for other weights
        return out

    def _offer_bundle_to_new_robots(self) -> None:
        """A robot that connected after the last push (or missed it) gets the current bundle."""
        if time.monotonic() - self._last_push < 2.0 or self.counters.bundle_version == 0:
            return
        now, timeout = time.monotonic(), self.server.config.robot_timeout_s
        stale = [r for r, heard in list(self.server.robots.items())
                 if now - heard < timeout and self.server.bundle_acks.get(r) != self.version_name]
        if stale:
            self.server.push_bundle(self.root / 'bundles' / f'v{self.counters.bundle_version:04d}', self.version_name)
            self._last_push = time.monotonic()

    def checkpoint(self) -> None:
        save_checkpoint(self.root, self.counters.updates, self.agent, self._hash,
                        {'learner': asdict(self.counters)}, keep=2)

    def close(self) -> None:
        self.server.close()
        self.store.close()


def _server_config(options: LearnerOptions) -> ServerConfig:
    if options.keys_dir is None:
        return ServerConfig(endpoint=options.bind)
    keys_dir = Path(options.keys_dir).expanduser()
    authorized = keys_dir / 'authorized'
    if not authorized.is_dir():
        raise LearnerError(f'{authorized} does not exist: create keys with `lamp-ros keys {keys_dir}`')
    return ServerConfig(endpoint=options.bind, keys=curve_keys.load(keys_dir / 'learner.key_secret'),
                        authorized_dir=authorized)


def _open_or_create(root: Path, options: LearnerOptions) -> tuple[TrainConfig, dict[str, Any]]:
    """(config, learner.json) of an existing learner run, or of a new one written completely first."""

    info_path = root / INFO_FILE
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if options.init_run is not None and str(Path(options.init_run).resolve()) != info['init_run']:
            raise LearnerError(f'{root} was started from {info["init_run"] or "scratch"}, not {options.init_run}; '
                               'choose another run directory')
        return load_yaml((root / 'config.yaml').read_text()), info
    if root.exists() and any(root.iterdir()):
        raise LearnerError(f'{root} exists and is not a learner run (no {INFO_FILE}); choose an empty directory')
    root.mkdir(parents=True, exist_ok=True)
    if options.init_run is not None:
        init = Path(options.init_run).expanduser().resolve()
        if not (init / 'run.json').is_file():
            raise LearnerError(f'--init {init} is not a lamp-train run (no run.json)')
        _, init_config, init_info = read_run(init)
        source = init_info.text_encoder
        checkpoint = latest_checkpoint(init)
        config = resolve_finetune(init_config, text.load(source)[0].dim, init_config.agent)
    else:
        config = preset(options.preset)
        source = text.default_source(root, config.text, config.seed)
        checkpoint = None
        config = resolve_finetune(config, text.load(source)[0].dim, None)
    agent = DrQAgent(config.agent, seed=config.seed)
    init_state_bounds(agent)
    if checkpoint is not None:
        load_weights(checkpoint, agent)
    info = {'init_run': str(init) if options.init_run is not None else '',
            'init_checkpoint': str(checkpoint or ''), 'preset': config.preset,
            'text_encoder': source.to_json(), 'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
    atomic_write_text(root / 'config.yaml', dump_yaml(config))
    save_checkpoint(root, 0, agent, run_hash(config), {'learner': asdict(Counters())})
    atomic_write_text(info_path, json.dumps(info, indent=1) + '\n')      # last: the run is complete
    return config, info
