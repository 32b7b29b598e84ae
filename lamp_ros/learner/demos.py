"""Recorded episodes (`lamp-ros record`, models.episodes files) into the learner's replay, e.g. teleoperated
demonstrations before the first robot episode. Each file is imported once per learner run (its id is kept in
RUN/demos_imported.txt); a file's state columns are those its meta names (`state_keys`: the robot recorder's
contract fields, the simulator's sim.STATE_KEYS) or the contract's when it names none. Steps the operator drove
keep their intervention flag, and an episode without flags
(e.g. a scripted expert's, `lamp-sim record-demos`) is a demonstration throughout: all of it also enters the
demo buffer (interventions.py), as HIL-SERL's demos do."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from lamp_ros.contract import STATE_KEYS
from lamp_ros.learner.chunk_store import ChunkStore
from models.episodes import Episode, iter_episodes

log = logging.getLogger(__name__)
IMPORTED = 'demos_imported.txt'


def import_demos(directory: Path, run_dir: Path, store: ChunkStore,
                 add_episode: Callable[[dict[str, np.ndarray]], None]) -> int:
    """Add every not yet imported, usable episode of `directory`; returns how many were added."""
    record = Path(run_dir) / IMPORTED
    done = set(record.read_text().split()) if record.exists() else set()
    added = 0
    for episode_id, episode in iter_episodes(directory, skip=done):
        states, problem = _contract_states(episode)
        problem = problem or _unusable(episode, states, store.state_index, store.cameras)
        if problem:
            log.warning('demo %s not imported: %s', episode_id, problem)
            continue
        rewards = episode.reward[1:] if episode.reward is not None else np.full(len(episode.action), np.nan)
        flags = episode.intervention if episode.intervention is not None else np.ones(len(episode.action), bool)
        frames = {cam: getattr(episode, f'image_{cam}') for cam in store.cameras}
        replay_episode, missing = store.format(frames, states, episode.action, rewards,
                                               episode.success, flags, episode.instruction)
        if missing:
            log.warning('demo %s: %d of %d rewards missing, stored as 0', episode_id, missing, len(rewards))
        add_episode(replay_episode)
        with open(record, 'a') as f:
            f.write(episode_id + '\n')
        added += 1
    return added


def _contract_states(episode: Episode) -> tuple[np.ndarray | None, str]:
    """The episode's states in the contract's columns (NaN where the file has none), or why it cannot be."""
    if episode.state is None:
        return None, 'it has no states (record it with `lamp-ros record`)'
    try:
        meta = json.loads(episode.meta) if episode.meta else {}
    except ValueError as e:
        return None, f'its meta is not JSON ({e})'
    keys = meta.get('state_keys', STATE_KEYS) if isinstance(meta, dict) else STATE_KEYS
    unknown = [k for k in keys if k not in STATE_KEYS]
    if unknown or len(keys) != episode.state.shape[1]:
        return None, (f'state has {episode.state.shape[1]} columns named {list(keys)}, expected fields of '
                      f'{", ".join(STATE_KEYS)}')
    states = np.full((len(episode.state), len(STATE_KEYS)), np.nan, np.float32)
    states[:, [STATE_KEYS.index(k) for k in keys]] = episode.state
    return states, ''


def _unusable(episode: Episode, states: np.ndarray, columns: list[int], cameras: tuple[str, ...]) -> str:
    if episode.action is None:
        return 'it has no actions (record it with `lamp-ros record`)'
    absent = [cam for cam in cameras if getattr(episode, f'image_{cam}', None) is None]
    if absent:
        return f'it has no {", ".join(absent)} camera images, which the agent sees'
    if len(episode.action) != episode.length - 1:
        return f'{len(episode.action)} actions for {episode.length} frames (expected one fewer)'
    if not np.isfinite(states[:, columns]).all():
        return "some of the robot states the agent reads are missing (NaN, or not among the file's state_keys)"
    return ''

