"""Recorded episodes (`lamp-ros record`, models.episodes files) into the learner's replay, e.g. teleoperated
demonstrations before the first robot episode. Each file is imported once per learner run (its id is kept in
RUN/demos_imported.txt); steps the operator drove keep their intervention flag."""
from __future__ import annotations

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
        problem = _unusable(episode, store.state_index)
        if problem:
            log.warning('demo %s not imported: %s', episode_id, problem)
            continue
        rewards = episode.reward[1:] if episode.reward is not None else np.full(len(episode.action), np.nan)
        flags = episode.intervention if episode.intervention is not None else np.zeros(len(episode.action), bool)
        replay_episode, missing = store.format(episode.image_front, episode.state, episode.action, rewards,
                                               episode.success, flags, episode.instruction)
        if missing:
            log.warning('demo %s: %d of %d rewards missing, stored as 0', episode_id, missing, len(rewards))
        add_episode(replay_episode)
        with open(record, 'a') as f:
            f.write(episode_id + '\n')
        added += 1
    return added


def _unusable(episode: Episode, columns: list[int]) -> str:
    if episode.action is None or episode.state is None:
        return 'it has no actions or no states (record it with `lamp-ros record`)'
    if len(episode.action) != episode.length - 1:
        return f'{len(episode.action)} actions for {episode.length} frames (expected one fewer)'
    if episode.state.shape[1] != len(STATE_KEYS):
        return f'state has {episode.state.shape[1]} columns, expected {len(STATE_KEYS)} ({", ".join(STATE_KEYS)})'
    if not np.isfinite(episode.state[:, columns]).all():
        return 'some robot states are missing (NaN)'
    return ''

