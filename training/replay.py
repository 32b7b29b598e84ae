"""Replay on disk: one .npz per finished episode, written atomically; an index rebuilt from the directory.

    REPLAY/<episode:06d>-<end env step:09d>.npz
        image_<camera>  uint8 [T+1, H, W, 3]      frames o_0 .. o_T
        state           float32 [T+1, S]
        action          float32 [T, A]            a_t leads from o_t to o_{t+1}
        reward          float32 [T]               the environment's (shaped) reward
        vlm_reward      float32 [T]               pretraining: r_VLM of o_{t+1} (standardized if configured)
        success         bool [T]
        privileged      float32 [T+1, P] (optional)   sim-only: sim.privileged's state of each frame (the
                                                  critic's, finetune.privileged_critic)
        terminated      bool []     (optional)    the episode ended at success (no bootstrap after its last step)
                                                  (sample's failure_is_terminal: or it failed, by time limit)
        instruction     str                       the episode's instruction
        instruction_embedding  float32 [E]

Why this shape: a crash (kill -9) can only lose the episode being collected; a file is either complete or
absent (lamp_ros.fileio writes a hidden temporary and renames it); a torn or foreign file found at start is
skipped with a warning and never stops the run. Memory is bounded: episodes are loaded on demand into an LRU
of `memory_episodes`; disk is bounded by `capacity` transitions (the oldest episode files are deleted).
"""
from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from lamp_ros.fileio import atomic_write_bytes, open_npz

_NAME = re.compile(r'(\d{6})-(\d{9})\.npz')
REQUIRED = ('state', 'action', 'reward', 'success', 'instruction', 'instruction_embedding')


class ReplayWarning(UserWarning):
    """A file in the replay directory was skipped (torn, truncated or not an episode)."""


@dataclass(frozen=True)
class EpisodeRecord:
    path: Path
    index: int          # episode number in the run
    end_step: int       # the run's env step counter when the episode ended
    length: int         # transitions


def episode_name(index: int, end_step: int) -> str:
    return f'{index:06d}-{end_step:09d}.npz'


class EpisodeReplay:
    def __init__(self, directory: Path, capacity: int, memory_episodes: int, cameras: tuple[str, ...],
                 n_step: int, privileged: bool = False) -> None:
        """`privileged`: episodes must carry 'privileged' (others are skipped, warned) and batches get its windows."""
        if capacity < 1 or memory_episodes < 1 or n_step < 1:
            raise ValueError(f'capacity {capacity}, memory_episodes {memory_episodes} and n_step {n_step} must be >= 1')
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.memory_episodes = memory_episodes
        self.cameras = cameras
        self.n_step = n_step
        self.privileged = privileged
        self.episodes: list[EpisodeRecord] = []
        self._memory: OrderedDict[Path, dict[str, np.ndarray]] = OrderedDict()
        self.loads = 0                       # episode files read from disk (LRU misses)
        self._scan()

    # --- index ---------------------------------------------------------------------------------------
    def _scan(self) -> None:
        for leftover in self.directory.glob('.*.npz.*'):      # a temporary of a write killed midway
            leftover.unlink()
        for path in sorted(self.directory.iterdir()):
            match = _NAME.fullmatch(path.name)
            if not match:
                warnings.warn(f'replay: skipping {path} (not an episode file name)', ReplayWarning, stacklevel=3)
                continue
            length = self._check(path)
            if length is not None:
                self.episodes.append(EpisodeRecord(path, int(match[1]), int(match[2]), length))

    def _check(self, path: Path) -> int | None:
        """The episode's length if the file is a complete episode with the fields we need, else None (warned)."""
        try:
            with open_npz(path) as data:
                missing = [k for k in self._required() if k not in data.files]
                if missing:
                    raise ValueError(f'missing arrays {missing}')
                length = len(data['action'])
                if len(data['state']) != length + 1 or length <= self.n_step:
                    raise ValueError(f'{length} actions but {len(data["state"])} states (n_step {self.n_step})')
                return length
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f'replay: skipping {path}: not a complete episode ({type(e).__name__}: {e})',
                          ReplayWarning, stacklevel=4)
            return None

    def _required(self) -> tuple[str, ...]:
        return (*REQUIRED, *(f'image_{c}' for c in self.cameras), *(('privileged',) if self.privileged else ()))

    @property
    def transitions(self) -> int:
        return sum(e.length for e in self.episodes)

    @property
    def next_index(self) -> int:
        return self.episodes[-1].index + 1 if self.episodes else 0

    # --- writing -------------------------------------------------------------------------------------
    def add(self, episode: Mapping[str, np.ndarray], end_step: int) -> EpisodeRecord:
        """Store a finished episode (arrays as in the module docstring); evict the oldest beyond capacity."""
        length = len(episode['action'])
        if length <= self.n_step:
            raise ValueError(f'episode of {length} steps is too short for {self.n_step}-step windows')
        for key in (f'image_{c}' for c in self.cameras):
            if key not in episode or episode[key].dtype != np.uint8 or len(episode[key]) != length + 1:
                raise ValueError(f'episode needs {key} as uint8 [{length + 1}, H, W, 3]')
        if self.privileged and ('privileged' not in episode or len(episode['privileged']) != length + 1):
            raise ValueError(f'episode needs privileged as float32 [{length + 1}, P] (this replay keeps it)')
        buffer = io.BytesIO()
        np.savez(buffer, **episode)
        path = self.directory / episode_name(self.next_index, end_step)
        atomic_write_bytes(path, buffer.getvalue())
        record = EpisodeRecord(path, self.next_index, end_step, length)
        self.episodes.append(record)
        while self.transitions > self.capacity and len(self.episodes) > 1:
            self._remove(self.episodes.pop(0))
        return record

    def rewrite(self, record: EpisodeRecord, episode: Mapping[str, np.ndarray]) -> None:
        """Replace a stored episode's arrays with ones of the same length (e.g. a success label that came after
        the episode was stored), atomically: a reader sees the old file or the new one."""
        if len(episode['action']) != record.length:
            raise ValueError(f'{record.path.name}: {len(episode["action"])} steps, the stored episode has '
                             f'{record.length}')
        buffer = io.BytesIO()
        np.savez(buffer, **episode)
        atomic_write_bytes(record.path, buffer.getvalue())
        self._memory.pop(record.path, None)

    def truncate_after(self, step: int) -> int:
        """Delete episodes that ended after env step `step` (collected after the checkpoint being resumed)."""
        later = [e for e in self.episodes if e.end_step > step]
        for record in later:
            self._remove(record)
        self.episodes = [e for e in self.episodes if e.end_step <= step]
        return len(later)

    def remove(self, record: EpisodeRecord) -> None:
        """Delete one stored episode (e.g. a success the operator relabelled a failure)."""
        self._remove(record)
        self.episodes = [e for e in self.episodes if e is not record]

    def _remove(self, record: EpisodeRecord) -> None:
        self._memory.pop(record.path, None)
        record.path.unlink(missing_ok=True)

    # --- reading -------------------------------------------------------------------------------------
    def load(self, record: EpisodeRecord) -> dict[str, np.ndarray]:
        hit = self._memory.get(record.path)
        if hit is not None:
            self._memory.move_to_end(record.path)
            return hit
        with open_npz(record.path) as data:
            episode = {k: data[k] for k in data.files}
        self.loads += 1
        self._memory[record.path] = episode
        while len(self._memory) > self.memory_episodes:
            self._memory.popitem(last=False)
        return episode

    def sample(self, batch_size: int, rng: np.random.Generator, reward_key: str = 'reward',
               failure_is_terminal: bool = False) -> dict[str, np.ndarray]:
        """Windows of n_step transitions, uniform over all windows of all stored episodes (agent.update's batch);
        `reward_key` names the stored reward the agent learns from ('success' gives 0/1), and 'terminal' marks
        the windows that end a terminated episode (with `failure_is_terminal`, also one that never succeeded)."""
        if not self.episodes:
            raise ValueError('replay is empty')
        n = self.n_step
        windows = np.array([e.length - n + 1 for e in self.episodes])
        ends = np.cumsum(windows)
        picks = rng.integers(0, ends[-1], size=batch_size)
        episode_ids = np.searchsorted(ends, picks, side='right')
        starts = picks - (ends[episode_ids] - windows[episode_ids])
        out: dict[str, np.ndarray] = {}
        for row, order in enumerate(np.argsort(episode_ids, kind='stable')):   # episode by episode: fewer loads
            record = self.episodes[episode_ids[order]]
            episode = self.load(record)
            t = int(starts[order])
            parts = {f'image_{c}': episode[f'image_{c}'][t:t + n + 1] for c in self.cameras}
            parts.update(state=episode['state'][t:t + n + 1], action=episode['action'][t:t + n],
                         reward=episode[reward_key][t:t + n].astype(np.float32),
                         instruction=episode['instruction_embedding'],
                         terminal=np.bool_(t + n == record.length and episode_ends(episode, failure_is_terminal)))
            if self.privileged:
                parts['privileged'] = episode['privileged'][t:t + n + 1]
            for key, value in parts.items():
                if key not in out:
                    out[key] = np.empty((batch_size, *value.shape), value.dtype)
                out[key][row] = value
        return out


def episode_ends(episode: Mapping[str, np.ndarray], failure_is_terminal: bool) -> bool:
    """Whether nothing follows the episode's last step: it terminated (at success), or, with
    `failure_is_terminal`, it never succeeded (the time limit is the task's: a stall until it runs out is failure,
    not a state whose value the critic may bootstrap)."""
    if bool(episode.get('terminated', False)):
        return True
    return failure_is_terminal and not bool(np.any(episode['success']))


def mixed_sample(replay: EpisodeReplay, demos: EpisodeReplay | None, batch_size: int, demo_fraction: float,
                 rng: np.random.Generator, reward_key: str = 'reward',
                 failure_is_terminal: bool = False) -> dict[str, np.ndarray]:
    """A batch from `replay` with `demo_fraction` of its rows from `demos` (RLPD's symmetric sampling; all rows
    from the demos while replay is empty, none while the demos are), marked in 'demo' (bool [B]) for the
    behaviour-cloning term. `failure_is_terminal` applies to `replay`'s episodes only: the demos succeeded, or are
    operators' segments cut from an episode that went on."""
    if demos is None or not demos.episodes:
        batch = replay.sample(batch_size, rng, reward_key, failure_is_terminal)
        batch['demo'] = np.zeros(batch_size, bool)
        return batch
    n_demo = round(batch_size * demo_fraction) if replay.episodes else batch_size
    parts = [(demos.sample(n_demo, rng, reward_key), True)] if n_demo else []
    if n_demo < batch_size:
        parts.append((replay.sample(batch_size - n_demo, rng, reward_key, failure_is_terminal), False))
    batch = {key: np.concatenate([part[key] for part, _ in parts]) for key in parts[0][0]}
    batch['demo'] = np.concatenate([np.full(len(part['state']), is_demo) for part, is_demo in parts])
    return batch
