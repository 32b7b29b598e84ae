"""The online learner: robots' transitions in (pyzmq link), agent updates, new policy bundles out.

    RUN/learner.json      how the run was made: mode (finetune or pretrain), init run (a `lamp-train` run) or
                          preset, text encoder, reward source
    RUN/config.yaml       the training config (training/config.py), resolved for finetuning
    RUN/checkpoints/      agent + optimizers + learner counters (training/checkpoint.py); resume from the newest
    RUN/incoming/         chunks as they arrive, until their episode is complete (chunk_store.py)
    RUN/replay/           complete episodes in the training replay format (training/replay.py)
    RUN/demo_replay/      the stretches the operator drove (training/interventions.py), imported demos and, with
                          finetune.success_to_demos, the robot's successful episodes: the demo buffer,
                          finetune.demo_fraction of every batch (RLPD), cloned by the BC term
    RUN/unrewarded/       complete episodes that came mostly without rewards (NaN kept; not trained on)
    RUN/bundles/vNNNN/    every policy bundle pushed to the robots

Why it looks like this: a chunk is on disk before it is acknowledged, so a learner killed at any moment loses
nothing a robot considers delivered; the robot resends the rest, and on start incoming/ is rescanned for
episodes a crash left complete. Training (the agent, torch) runs in the caller's thread, storing in the link's
thread: a slow update never delays an acknowledgement. Updates are bounded by `updates_per_transition` so a
learner with few transitions does not overfit them while it waits, and pause while robots send steps without
rewards (rewards.py). If the link thread ever dies, `run` raises LinkFailed: the process must exit non-zero.
With the 'success' reward source the reward is the episode's success (the operator's label or sim/success) at
its last step, which ends it: what a person can tell a robot (HIL-SERL's sparse reward).
A pretraining run (`reward_checkpoint`: LAMP's reward) takes the robots' r_VLM ('r3m', R3M's score computed where
the frames are), standardizes it per instruction if configured, and mixes it with the agent's novelty
(alpha * r_VLM + (1 - alpha) * novelty, training.runs.resolve_pretrain); the policy reads R3M's language encoder.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_ros.contract import DEFAULT_CONTROL_RATE_HZ
from lamp_ros.fileio import atomic_write_text
from lamp_ros.learner.chunk_store import SOURCE_KEY, ChunkStore
from lamp_ros.learner.demos import import_demos
from lamp_ros.learner.rewards import RewardSourceError, checked_source
from lamp_ros.link import keys as curve_keys
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from lamp_ros.link.refusal import BAD_HELLO, REWARD_SOURCE, Refused
from lamp_ros.link.schema import Hello
from training.agent import DrQAgent
from training.export import export_bundle
from sim import STATE_KEYS
from training import text
from training.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from training.config import (FinetuneSettings, TrainConfig, differences, dump_yaml, load_yaml, override, preset,
                             replace)
from training.loop import run_hash
from training.replay import EpisodeRecord, EpisodeReplay, mixed_sample
from training.run import read_run
from training.interventions import intervention_segments
from training.runs import init_state_bounds, resolve_finetune, resolve_pretrain
from training.text import InstructionEmbedder
from training.vlm import RewardStandardizer

log = logging.getLogger(__name__)
INFO_FILE = 'learner.json'
SUCCESS_REWARD = 'success'
RECENT_EPISODES = 10                        # the status's interventions per episode: mean over these
RECENT_SOURCES = 1000                       # stored episodes a late operator label can still reach


class LearnerError(ValueError):
    """The learner cannot start as asked (bad run directory, init run or keys); the message says why."""


@dataclass(frozen=True)
class LearnerOptions:
    run_dir: Path
    init_run: Path | None = None            # a lamp-train run (pretrain or finetune) to start from
    preset: str = 'cpu'                     # from scratch: training/config.py presets (debug, cpu, paper)
    cameras: tuple[str, ...] = ('front',)   # from scratch: the images the agent sees (an init run's agent decides)
    settings: tuple[str, ...] = ()          # a new run's config overrides, e.g. 'finetune.bc_decay_steps=40000'
    reward_checkpoint: Path | None = None   # pretraining from scratch: the R3M checkpoint (its text encoder)
    bind: str = 'tcp://127.0.0.1:5555'      # where robots connect; tcp://0.0.0.0:5555 for other hosts
    keys_dir: Path | None = None            # CurveZMQ: learner.key_secret + authorized/ (lamp-ros keys DIR)
    bundle_every: int = 200                 # agent updates between policy bundles
    checkpoint_every: int = 500             # agent updates between checkpoints
    updates_per_transition: float = 1.0     # at most this many updates per stored transition
    min_transitions: int = 0                # no updates before this many (0: one batch of windows)
    demos_dir: Path | None = None           # recorded episodes (lamp-ros record) to add to the replay, once each
    device: str = 'cpu'
    threads: int = 1
    reward_source: str = ''                 # task | r3m | clip | success; '': as recorded, or the first hello's
    max_message_bytes: int = ServerConfig.max_message_bytes   # a robot message over this is refused
    max_missing_rewards: float = 0.5        # an episode with more missing rewards than this goes to unrewarded/


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
        self.mode = str(info.get('mode', 'finetune'))
        self.reward_source = str(info.get('reward_source', ''))
        self.updates_per_transition = options.updates_per_transition    # the cap on updates (a fleet sets it)
        self.sim_version = str(info.get('sim_version', ''))        # of its simulated robots, once one said hello
        self._info_lock = threading.Lock()
        self.source = text.TextEncoderSource.from_json(info['text_encoder'])
        self.agent = DrQAgent(self.config.agent, seed=self.config.seed, device=options.device)
        self._hash = run_hash(self.config)
        checkpoint = latest_checkpoint(self.root)
        payload = load_checkpoint(checkpoint, self.agent, self._hash)
        self.counters = Counters(**payload['trainer'].get('learner', {}))
        self.standardizer = None                 # pretraining with reward.standardize_rewards: per instruction
        if self.mode == 'pretrain' and self.config.reward.standardize_rewards:
            self.standardizer = RewardStandardizer()
            self.standardizer.load_state(payload['trainer'].get('reward_stats', {}))
        self.rng = np.random.default_rng(self.config.seed + self.counters.updates)
        self.text_encoder, self.vocab = text.load(self.source)
        self.embedder = InstructionEmbedder(self.text_encoder, self.vocab, self.config.text.max_tokens)
        self.replay = EpisodeReplay(self.root / 'replay', self.config.replay.capacity,
                                    self.config.replay.memory_episodes, self.cameras, self.config.agent.n_step)
        self.demos = EpisodeReplay(self.root / 'demo_replay', self.config.replay.capacity,
                                   self.config.replay.memory_episodes, self.cameras, self.config.agent.n_step)
        self.recent_interventions: deque[int] = deque(maxlen=RECENT_EPISODES)   # steps per episode, newest last
        self._recent: OrderedDict[str, EpisodeRecord] = OrderedDict()          # source episode -> its replay record
        self._promoted: OrderedDict[str, EpisodeRecord] = OrderedDict()        # ... -> its copy among the demos
        self._replay_lock = threading.Lock()
        self.store = ChunkStore(self.root / 'incoming', self._add_episode, self.embedder,
                                self.config.agent.image_size, STATE_KEYS, self.root / 'unrewarded',
                                options.max_missing_rewards, cameras=self.cameras, relabel=self._relabel)
        self.store.recover(last_added=_last_source(self.replay))
        if options.demos_dir is not None:
            self.import_demos(Path(options.demos_dir).expanduser())
        self.server = LinkServer(_server_config(options), self.store.store, self.store.is_stored, self._accept_hello)
        self._last_push = 0.0
        self.metrics: dict[str, float] = {}
        log.info('learner %s: %d episodes (%d transitions) in replay, %d updates, bundle v%d; listening on %s%s',
                 self.root, len(self.replay.episodes), self.replay.transitions, self.counters.updates,
                 self.counters.bundle_version, options.bind, ' (CurveZMQ)' if options.keys_dir else '')

    def import_demos(self, directory: Path) -> int:
        """Recorded episodes (demos.py) into the replay and the demo buffer, each file once per run."""
        added = import_demos(directory, self.root, self.store, self._add_episode)
        log.info('%d recorded episodes from %s added to the replay', added, directory)
        return added

    # --- storing (link thread) --------------------------------------------------------------------------
    def _add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """(link thread) A complete episode into the replay; the stretches the operator drove into the demos."""
        with self._replay_lock:
            if len(episode['action']) <= self.replay.n_step:
                log.warning('episode of %d steps is too short to learn from (n_step %d): kept out of the replay',
                            len(episode['action']), self.replay.n_step)
                return
            if self.reward_source == SUCCESS_REWARD:
                episode = success_rewarded(episode)
            if self.standardizer is not None:
                episode = self._standardized(episode)
            record = self.replay.add(episode, end_step=self.replay.transitions + len(episode['action']))
            self._recent[str(episode.get(SOURCE_KEY, ''))] = record
            while len(self._recent) > RECENT_SOURCES:
                self._recent.popitem(last=False)
            for segment in intervention_segments(episode, self.demos.n_step):
                self.demos.add(segment, end_step=self.demos.transitions + len(segment['action']))
            self._promote(str(episode.get(SOURCE_KEY, '')), episode)
            self.recent_interventions.append(int(np.sum(episode.get('intervention', 0))))

    def _standardized(self, episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """LAMP's standardize_rewards: r_VLM minus its instruction's running mean, over its running std (the raw
        reward kept as vlm_reward_raw)."""
        raw = np.asarray(episode['reward'], np.float32)
        instruction = str(episode['instruction'])
        return {**episode, 'vlm_reward_raw': raw, 'reward': self.standardizer.update_and_standardize(instruction, raw)}

    def _promote(self, source: str, episode: dict[str, np.ndarray]) -> None:
        """finetune.success_to_demos: a successful episode is also a demonstration (self-imitation); one the
        operator relabels a failure stops being one."""
        if not self.config.finetune.success_to_demos:
            return
        promoted = self._promoted.pop(source, None)
        if promoted is not None and promoted in self.demos.episodes:
            self.demos.remove(promoted)
        intervened = bool(np.any(episode.get('intervention', False)))
        if self.config.finetune.promotes(bool(np.asarray(episode['success']).any()), len(episode['action']),
                                         intervened):
            self._promoted[source] = self.demos.add(
                episode, end_step=self.demos.transitions + len(episode['action']))
            while len(self._promoted) > RECENT_SOURCES:
                self._promoted.popitem(last=False)

    def _relabel(self, source: str, success: bool) -> bool:
        """(link thread) An operator's label that came after its episode was stored: the episode's success (and,
        with the 'success' reward, its reward and termination) rewritten in the replay. False if the episode is
        not among this session's recent ones. The demo buffer's intervention stretches keep what they had; a
        promoted success (finetune.success_to_demos) follows the label."""
        with self._replay_lock:
            record = self._recent.get(source)
            if record is None or record not in self.replay.episodes:
                return False
            episode = dict(self.replay.load(record))
            flags = np.zeros(record.length, bool)
            flags[-1] = success
            episode['success'] = flags
            if self.reward_source == SUCCESS_REWARD:
                episode = success_rewarded(episode)
            self.replay.rewrite(record, episode)
            self._promote(source, episode)
        log.info('episode %s relabelled by the operator: %s', source, 'success' if success else 'failure')
        return True

    @property
    def cameras(self) -> tuple[str, ...]:
        """The images the agent sees, front first: what every robot's steps must carry."""
        return tuple(self.config.agent.cameras)

    def _accept_hello(self, hello: Hello) -> None:
        """(link thread) A robot whose steps carry other cameras than the agent sees is refused; so is one
        announcing another reward source than the run's; the first source announced is recorded for a run
        that had none."""
        if hello.cameras != self.cameras:
            raise Refused(BAD_HELLO, f'the robot sends cameras {list(hello.cameras)}, this agent sees '
                                     f'{list(self.cameras)} (set the actor\'s cameras parameter to match)')
        self._check_sim_version(hello)
        if not hello.reward_source:
            return
        with self._info_lock:
            try:
                source = checked_source(self.reward_source, hello.reward_source, str(self.root))
            except RewardSourceError as e:
                raise Refused(REWARD_SOURCE, str(e)) from e
            if source != self.reward_source:
                _update_info(self.root, reward_source=source)
                self.reward_source = source
                log.info('learner %s: reward source %r (announced by robot %s) recorded', self.root, source,
                         hello.robot_id)

    def _check_sim_version(self, hello: Hello) -> None:
        """Simulated robots of one run run one simulator version (the first announced is recorded); real robots
        announce none."""
        if not hello.sim_version:
            return
        with self._info_lock:
            recorded = self.sim_version
            if recorded and recorded != hello.sim_version:
                raise Refused(BAD_HELLO, f'robot {hello.robot_id} runs simulator {hello.sim_version}, this run\'s '
                                         f'simulated robots ran {recorded}: start a new run for another version')
            if not recorded:
                _update_info(self.root, sim_version=hello.sim_version)
                self.sim_version = hello.sim_version

    # --- status ---------------------------------------------------------------------------------------
    @property
    def version_name(self) -> str:
        return f'{self.root.name}-v{self.counters.bundle_version:04d}'

    def training_state(self) -> str:
        """'training', 'waiting for transitions' or 'paused: why'."""
        return self.store.reward_flow.status() or ('training' if self._can_update() else 'waiting for transitions')

    def status(self) -> dict[str, Any]:
        return {'updates': self.counters.updates, 'bundle_version': self.version_name,
                'training': self.training_state(), 'reward_source': self.reward_source,
                'transitions_stored': self.store.transitions_stored, 'episodes': len(self.replay.episodes),
                'replay_transitions': self.replay.transitions, 'duplicates': self.server.duplicates,
                'episodes_unrewarded': self.store.episodes_unrewarded,
                'episodes_without_instruction': self.store.episodes_uninstructed,
                'episodes_incomplete': self.store.episodes_incomplete,
                'interventions_last_episode': self.recent_interventions[-1] if self.recent_interventions else 0,
                'interventions_per_episode': (float(np.mean(self.recent_interventions))
                                              if self.recent_interventions else 0.0),
                'demo_episodes': len(self.demos.episodes), 'demo_transitions': self.demos.transitions,
                'refused': self.server.faults.totals(), 'faults': self.server.faults.active(),
                'robots': sorted(self.server.robots), **{f'train/{k}': v for k, v in self.metrics.items()}}

    # --- training (caller's thread) -------------------------------------------------------------------
    def run(self, stop: threading.Event, max_updates: int | None = None) -> None:
        """Train until `stop` is set (or max_updates more updates); push bundles as configured. Raises
        LinkFailed if the link thread died."""
        if self.counters.bundle_version == 0:
            self.publish_bundle()
        target = None if max_updates is None else self.counters.updates + max_updates
        while not stop.is_set() and (target is None or self.counters.updates < target):
            self.server.check()
            self._offer_bundle_to_new_robots()
            if self.store.reward_flow.paused or not self._can_update():
                stop.wait(0.05)
                continue
            with self._replay_lock:
                batch = mixed_sample(self.replay, self.demos, self.config.batch_size,
                                     self.config.finetune.demo_fraction, self.rng,
                                     failure_is_terminal=self.config.finetune.failure_is_terminal)
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
                and self.counters.updates < self.updates_per_transition * transitions)

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
        trainer = {'learner': asdict(self.counters)}
        if self.standardizer is not None:
            with self._replay_lock:
                trainer['reward_stats'] = self.standardizer.state()
        save_checkpoint(self.root, self.counters.updates, self.agent, self._hash, trainer, keep=2)

    def close(self) -> None:
        self.server.close()
        self.store.close()


def success_rewarded(episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The 'success' reward: 1 at the step that succeeded (the last: success ends an episode), else 0."""
    success = np.asarray(episode['success'], bool)
    return {**episode, 'reward': success.astype(np.float32), 'terminated': np.array(bool(success[-1]))}


def _server_config(options: LearnerOptions) -> ServerConfig:
    if options.max_message_bytes < 1:
        raise LearnerError(f'max_message_bytes must be positive, got {options.max_message_bytes}')
    if options.keys_dir is None:
        return ServerConfig(endpoint=options.bind, max_message_bytes=options.max_message_bytes)
    keys_dir = Path(options.keys_dir).expanduser()
    authorized = keys_dir / 'authorized'
    if not authorized.is_dir():
        raise LearnerError(f'{authorized} does not exist: create keys with `lamp-ros keys {keys_dir}`')
    return ServerConfig(endpoint=options.bind, keys=curve_keys.load(keys_dir / 'learner.key_secret'),
                        authorized_dir=authorized, max_message_bytes=options.max_message_bytes)


def _overridden(config: TrainConfig, settings: tuple[str, ...]) -> TrainConfig:
    try:
        return override(config, list(settings))
    except ValueError as e:
        raise LearnerError(str(e)) from None


def _resumed(root: Path, options: LearnerOptions) -> dict[str, Any]:
    """learner.json of an existing run, if `options` agree with it (init run, reward source)."""
    info = json.loads((root / INFO_FILE).read_text())
    if options.reward_checkpoint is not None and (       # the path only: text.load checks model.pt's digest
            str(Path(options.reward_checkpoint).expanduser().resolve()) != info.get('reward_checkpoint')):
        raise LearnerError(f'{root} is not a pretraining run with the reward checkpoint {options.reward_checkpoint} '
                           f'(it has {info.get("reward_checkpoint") or "none"}); choose another run directory')
    if options.init_run is not None and str(Path(options.init_run).resolve()) != info['init_run']:
        raise LearnerError(f'{root} was started from {info["init_run"] or "scratch"}, not {options.init_run}; '
                           'choose another run directory')
    try:
        source = checked_source(info.get('reward_source', ''), options.reward_source, str(root))
    except RewardSourceError as e:
        raise LearnerError(str(e)) from e
    if source != info.get('reward_source', ''):
        _update_info(root, reward_source=source)
        info['reward_source'] = source
    return info


def _last_source(replay: EpisodeReplay) -> str:
    """The incoming episode the replay's newest episode was made of ('' if none or a demo)."""
    if not replay.episodes:
        return ''
    episode = replay.load(replay.episodes[-1])
    return str(episode[SOURCE_KEY]) if SOURCE_KEY in episode else ''


def _update_info(root: Path, **fields: Any) -> None:
    """learner.json with `fields` set (what the robots' hellos told the run: reward source, sim version)."""
    info = json.loads((root / INFO_FILE).read_text())
    atomic_write_text(root / INFO_FILE, json.dumps({**info, **fields}, indent=1) + '\n')


def _open_or_create(root: Path, options: LearnerOptions) -> tuple[TrainConfig, dict[str, Any]]:
    """(config, learner.json) of an existing learner run, or of a new one written completely first."""
    if (root / INFO_FILE).is_file():
        return _reopened(root, options)
    if root.exists() and any(root.iterdir()):
        raise LearnerError(f'{root} exists and is not a learner run (no {INFO_FILE}); choose an empty directory')
    if options.reward_checkpoint is not None and (options.init_run is not None or
                                                  options.reward_source not in ('', 'r3m')):
        raise LearnerError('pretraining (an R3M reward checkpoint) starts from scratch on the r3m reward: no init '
                           f'run and no other reward source (got {options.init_run or options.reward_source})')
    root.mkdir(parents=True, exist_ok=True)
    start = _from_init(options) if options.init_run is not None else _from_preset(root, options)
    if start.config.finetune.privileged_critic:
        raise LearnerError('finetune.privileged_critic is for sim-only training (lamp-train finetune): robots send '
                           'no simulator state')
    return _created(root, options, start)


def _reopened(root: Path, options: LearnerOptions) -> tuple[TrainConfig, dict[str, Any]]:
    """An existing run, with the settings it was made with (other settings are refused, not applied)."""
    info = _resumed(root, options)
    config = load_yaml((root / 'config.yaml').read_text())
    changed = differences(config, _overridden(config, options.settings))
    if changed:
        raise LearnerError(f'{root} was made with other settings ({", ".join(changed)}): RUN/config.yaml holds '
                           'a run\'s settings; start a new run to change them')
    return config, info


@dataclass
class _Start:
    """What a new learner run starts from: its config and text encoder, and the weights to load (if any)."""
    config: TrainConfig
    source: Any                                  # training.text's encoder source
    checkpoint: Path | None = None
    modules: tuple[str, ...] | None = None
    init: Path | None = None


def _from_init(options: LearnerOptions) -> _Start:
    """A finetuning start from a lamp-train run: its config and text encoder; an imitation run's critic is not
    worth keeping, so only its encoder and actor are loaded."""
    init = Path(options.init_run).expanduser().resolve()
    if not (init / 'run.json').is_file():
        raise LearnerError(f'--init {init} is not a lamp-train run (no run.json)')
    _, init_config, init_info = read_run(init)
    source = init_info.text_encoder
    config = _overridden(replace(init_config, finetune=FinetuneSettings()), options.settings)
    config = resolve_finetune(config, text.load(source)[0].dim, init_config.agent, init_info.mode)
    modules = (('encoder', 'actor') if init_info.mode == 'imitate'
               else ('encoder', 'actor', 'critic', 'critic_target', 'ensemble'))
    return _Start(config, source, latest_checkpoint(init), modules, init)


def _from_preset(root: Path, options: LearnerOptions) -> _Start:
    """A start from scratch: the preset with the robot's cameras; pretraining (an R3M checkpoint) or finetuning."""
    config = preset(options.preset)
    config = replace(config, agent=replace(config.agent, cameras=tuple(options.cameras)))
    config = _overridden(config, options.settings)
    if options.reward_checkpoint is not None:
        source = text.r3m_source(Path(options.reward_checkpoint).expanduser())
        return _Start(resolve_pretrain(config, text.load(source)[0].dim), source)
    source = text.default_source(root, config.text, config.seed)
    return _Start(resolve_finetune(config, text.load(source)[0].dim, None), source)


def _learner_info(options: LearnerOptions, start: _Start) -> dict[str, Any]:
    """learner.json of a new run: what it is and what it started from."""
    pretraining = options.reward_checkpoint is not None
    return {'mode': 'pretrain' if pretraining else 'finetune',
            'init_run': str(start.init) if start.init is not None else '',
            'init_checkpoint': str(start.checkpoint or ''), 'preset': start.config.preset,
            'reward_source': 'r3m' if pretraining else options.reward_source,
            'reward_checkpoint': start.source.path if pretraining else '',
            'text_encoder': start.source.to_json(), 'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}


def _created(root: Path, options: LearnerOptions, start: _Start) -> tuple[TrainConfig, dict[str, Any]]:
    """Write the new run: config, the starting agent as checkpoint 0, and learner.json last (the run is complete)."""
    config = start.config
    agent = DrQAgent(config.agent, seed=config.seed)
    init_state_bounds(agent)
    if start.checkpoint is not None:
        load_weights(start.checkpoint, agent, start.modules)
    agent.reset_reference()                           # IBRL's reference (finetune.reference_actor): the start
    info = _learner_info(options, start)
    atomic_write_text(root / 'config.yaml', dump_yaml(config))
    save_checkpoint(root, 0, agent, run_hash(config), {'learner': asdict(Counters())})
    atomic_write_text(root / INFO_FILE, json.dumps(info, indent=1) + '\n')      # last: the run is complete
    return config, info
