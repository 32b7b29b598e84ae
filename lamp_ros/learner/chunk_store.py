"""The learner's durable intake: chunks of transitions from robots -> complete episodes in the replay.

Every chunk is written to RUN/incoming/<episode>/ (atomically) and its id appended to a log before the link
acknowledges it, so a chunk the robot resends after a learner crash is recognised and not stored twice, and
nothing acknowledged is ever lost. When an episode's chunks are all there (the last one says how many steps),
they become one replay episode in the training format (training/replay.py): frames at the agent's image
size, the agent's state fields, actions, rewards (the reward of o_{t+1}), success, intervention flags.
"""
from __future__ import annotations

import io
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from lamp_ros.contract import STATE_KEYS
from lamp_ros.fileio import atomic_write_bytes

log = logging.getLogger(__name__)
STORED_LOG = 'stored_chunks.log'
LABELS = 'labels.jsonl'
LAST_CHUNK_SUFFIX = '.last.npz'             # the chunk that ends an episode (success, label, o_T)


class ChunkStore:
    def __init__(self, incoming: Path, add_episode: Callable[[dict[str, np.ndarray]], Any],
                 embed: Callable[[str], np.ndarray], image_size: int, state_keys: tuple[str, ...]) -> None:
        unknown = [k for k in state_keys if k not in STATE_KEYS]
        if unknown:
            raise ValueError(f'state keys {unknown} are not in the contract {STATE_KEYS}')
        self.incoming = Path(incoming)
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.add_episode, self.embed = add_episode, embed
        self.image_size = image_size
        self.state_index = [STATE_KEYS.index(k) for k in state_keys]
        self._lock = threading.Lock()
        log_path = self.incoming / STORED_LOG
        entries = [line.split() for line in log_path.read_text().splitlines()] if log_path.exists() else []
        self._stored = {e[0] for e in entries if e}
        self.transitions_stored = sum(int(e[1]) for e in entries if len(e) == 2)    # since the run began
        self._log = open(log_path, 'a')
        self.episodes_completed = 0
        self.rewards_missing = 0

    def is_stored(self, chunk_id: str) -> bool:
        with self._lock:
            return chunk_id in self._stored

    def store(self, chunk_id: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Durably keep a chunk (called by the link before it acknowledges); complete its episode if it can."""
        episode = str(meta.get('episode', ''))
        if not episode or '/' in episode or episode.startswith('.'):
            raise ValueError(f'chunk {chunk_id} names no usable episode ({episode!r})')
        folder = self.incoming / episode
        if 'label_update' in meta:               # an operator label after the episode was complete: kept on record
            with self._lock, open(self.incoming / LABELS, 'a') as f:
                f.write(json.dumps({'episode': episode, **meta['label_update']}) + '\n')
        else:
            folder.mkdir(exist_ok=True)
            buffer = io.BytesIO()
            np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
            suffix = LAST_CHUNK_SUFFIX if meta.get('last') else '.npz'
            atomic_write_bytes(folder / f'{int(meta["first_step"]):07d}_{chunk_id}{suffix}', buffer.getvalue())
        with self._lock:
            steps = len(arrays.get('action', ()))
            self._stored.add(chunk_id)
            self._log.write(f'{chunk_id} {steps}\n')           # chunk id and its transitions, one line each
            self._log.flush()
            self.transitions_stored += steps
        if folder.is_dir():
            self._try_complete(folder)

    def _try_complete(self, folder: Path) -> None:
        if not any(folder.glob(f'*{LAST_CHUNK_SUFFIX}')):
            return                                    # not before its last chunk: don't read the others yet
        parts = []
        for path in sorted(folder.glob('*.npz')):
            with np.load(path, allow_pickle=False) as data:
                parts.append((json.loads(str(data['meta'])), {k: data[k] for k in data.files if k != 'meta'}))
        last = next((m['last'] for m, _ in parts if m.get('last')), None)
        if last is None:
            return
        steps = sum(len(a['action']) for _, a in parts)
        starts = [m['first_step'] for m, _ in parts]
        expected = list(np.cumsum([0] + [len(a['action']) for _, a in parts[:-1]]))
        if steps != last['steps'] or starts != expected:
            return                                    # a chunk is still on its way (resent after an outage)
        if steps < 2 or 'final_image' not in parts[-1][1]:
            log.warning('episode %s: %d steps and no final frame: not stored as an episode', folder.name, steps)
            shutil.rmtree(folder)
            return
        self.add_episode(self._episode(parts, last))
        self.episodes_completed += 1
        shutil.rmtree(folder)

    def _episode(self, parts: list[tuple[dict, dict]], last: dict) -> dict[str, np.ndarray]:
        cat = lambda key: np.concatenate([a[key] for _, a in parts])   # noqa: E731
        final = parts[-1][1]
        episode, missing = self.format(
            frames=np.concatenate([cat('image_front'), final['final_image']]),
            states=np.concatenate([cat('state'), final['final_state']]), actions=cat('action'),
            rewards=cat('reward'), success=bool(last.get('success')), interventions=cat('intervention'),
            instruction=str(parts[0][0].get('instruction', '')))
        if missing:
            self.rewards_missing += missing
            log.warning('episode %s: %d of %d rewards missing, stored as 0', parts[0][0]['episode'], missing,
                        len(episode['reward']))
        return episode

    def format(self, frames: np.ndarray, states: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               success: bool, interventions: np.ndarray, instruction: str) -> tuple[dict[str, np.ndarray], int]:
        """An episode in the training replay's format (training/replay.py) from robot-side arrays: frames and
        contract states [T+1], actions, rewards (of o_{t+1}; NaN = missing, stored as 0) and flags [T].
        Returns it and the count of missing rewards."""
        rewards = np.asarray(rewards, np.float32).copy()
        missing = ~np.isfinite(rewards)
        rewards[missing] = 0.0
        flags = np.zeros(len(rewards), bool)
        flags[-1] = success
        return {'image_front': self._resize(frames), 'state': states[:, self.state_index].astype(np.float32),
                'action': np.asarray(actions, np.float32), 'reward': rewards, 'success': flags,
                'intervention': np.asarray(interventions, bool), 'instruction': np.array(instruction),
                'instruction_embedding': np.asarray(self.embed(instruction), np.float32)}, int(missing.sum())

    def _resize(self, frames: np.ndarray) -> np.ndarray:
        if frames.shape[1:3] == (self.image_size, self.image_size):
            return frames
        return np.stack([cv2.resize(f, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                         for f in frames])

    def close(self) -> None:
        self._log.close()
