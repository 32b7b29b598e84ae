"""The learner's durable intake: chunks of transitions from robots -> complete episodes in the replay.

Every chunk is written to RUN/incoming/<episode>/ (atomically) and its id appended to a log before the link
acknowledges it, so a chunk the robot resends after a learner crash is recognised and not stored twice, and
nothing acknowledged is ever lost. A chunk that contradicts its episode's stored chunks is refused instead
(episode_parts.py). When an episode's chunks are all there (the last one says how many steps), they become
one replay episode in the training format (training/replay.py): frames at the agent's image size, the agent's
state fields, actions, rewards (the reward of o_{t+1}), success, intervention flags. An episode mostly
without rewards goes to RUN/unrewarded/ instead (rewards.py). On start, `recover` completes every episode a
crash left complete in incoming/ (its last chunk acknowledged, the replay file not yet written).
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
from lamp_ros.core.transitions import FRONT, final_image_key, image_key
from lamp_ros.fileio import atomic_write_bytes, open_npz
from lamp_ros.learner.episode_parts import READ_ERRORS, EpisodeParts, Part, chunk_file, scan
from lamp_ros.learner.rewards import RewardFlow
from lamp_ros.link.refusal import EPISODE_CONFLICT, Refused

log = logging.getLogger(__name__)
STORED_LOG = 'stored_chunks.log'
LABELS = 'labels.jsonl'
SOURCE_KEY = 'source_episode'            # in each replay episode: the incoming episode it was made of


class ChunkStore:
    def __init__(self, incoming: Path, add_episode: Callable[[dict[str, np.ndarray]], Any],
                 embed: Callable[[str], np.ndarray], image_size: int, state_keys: tuple[str, ...],
                 unrewarded: Path | None = None, max_missing_rewards: float = 0.5,
                 cameras: tuple[str, ...] = (FRONT,), relabel: Callable[[str, bool], bool] | None = None) -> None:
        """`cameras`: the images each episode keeps, front first (the agent's cameras; the link checked that
        the robot's hello announced these). `relabel(episode key, success)`: applies an operator label that
        came after the episode was stored; False if it could not (kept on record all the same)."""
        unknown = [k for k in state_keys if k not in STATE_KEYS]
        if unknown:
            raise ValueError(f'state keys {unknown} are not in the contract {STATE_KEYS}')
        self.incoming = Path(incoming)
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.unrewarded = Path(unrewarded) if unrewarded is not None else self.incoming.parent / 'unrewarded'
        self.uninstructed = self.incoming.parent / 'no_instruction'
        self.add_episode, self.embed, self.relabel = add_episode, embed, relabel
        self.image_size, self.max_missing_rewards = image_size, max_missing_rewards
        self.cameras = tuple(cameras)
        self.state_index = [STATE_KEYS.index(k) for k in state_keys]
        self._lock = threading.Lock()
        log_path = self.incoming / STORED_LOG
        entries = [line.split() for line in log_path.read_text().splitlines()] if log_path.exists() else []
        self._stored = {e[0] for e in entries if e}
        self.transitions_stored = sum(int(e[1]) for e in entries if len(e) == 2)    # since the run began
        self._log = open(log_path, 'a')
        self._episodes: dict[str, EpisodeParts] = {}          # incomplete episodes touched since start
        self.reward_flow = RewardFlow()
        self.episodes_completed = 0
        self.episodes_unrewarded = 0
        self.episodes_uninstructed = 0
        self.rewards_missing = 0

    def is_stored(self, chunk_id: str) -> bool:
        with self._lock:
            return chunk_id in self._stored

    @property
    def episodes_incomplete(self) -> int:
        return sum(1 for p in self.incoming.iterdir() if p.is_dir())

    # --- intake (the link thread) ------------------------------------------------------------------------
    def store(self, chunk_id: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Durably keep a chunk the link checked (lamp_ros/link/schema.py) before it is acknowledged; complete
        its episode if it can. Raises Refused if the chunk contradicts its episode's stored chunks."""
        episode = meta['episode']
        if 'label_update' in meta:               # an operator label after the episode was complete
            self._late_label(chunk_id, episode, meta['label_update'])
            return
        last = meta.get('last')
        part = Part(meta['first_step'], len(arrays['action']), chunk_id, last['steps'] if last else None)
        sides = tuple(arrays['image_front'].shape[1:3])
        parts = self._parts(episode)
        problem = parts.conflict(part, sides)
        if problem:
            raise Refused(EPISODE_CONFLICT, f'chunk {chunk_id} of episode {episode}: {problem}')
        folder = self.incoming / episode
        folder.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        atomic_write_bytes(chunk_file(folder, part), buffer.getvalue())
        parts.add(part, sides)
        self._logged(chunk_id, part.steps)
        self.reward_flow.note(arrays['reward'])
        if parts.complete():
            self._complete_logged(folder, parts)

    def _late_label(self, chunk_id: str, episode: str, update: dict) -> None:
        """Applied to the stored episode where it can be, and kept on record in labels.jsonl either way."""
        applied = self.relabel is not None and self.relabel(episode, bool(update['success']))
        if not applied:
            log.warning('episode %s: label %r came after the episode left this session\'s replay: recorded in %s, '
                        'not applied', episode, update['label'], LABELS)
        with self._lock, open(self.incoming / LABELS, 'a') as f:
            f.write(json.dumps({'episode': episode, **update, 'applied': applied}) + '\n')
        self._logged(chunk_id, 0)

    def _logged(self, chunk_id: str, steps: int) -> None:
        with self._lock:
            self._stored.add(chunk_id)
            self._log.write(f'{chunk_id} {steps}\n')           # chunk id and its transitions, one line each
            self._log.flush()
            self.transitions_stored += steps

    def _parts(self, episode: str) -> EpisodeParts:
        parts = self._episodes.get(episode)
        if parts is None:
            folder = self.incoming / episode
            parts = self._scanned(folder) if folder.is_dir() else EpisodeParts()
            self._episodes[episode] = parts
        return parts

    def _scanned(self, folder: Path) -> EpisodeParts:
        parts, problems = scan(folder)
        for problem in problems:
            log.error('episode %s: %s (an acknowledged chunk is lost: disk fault?)', folder.name, problem)
        return parts

    def _complete_logged(self, folder: Path, parts: EpisodeParts) -> None:
        """Complete an episode; a disk error leaves it in incoming/ for the next start (the chunk is stored)."""
        try:
            self._complete(folder, parts)
        except OSError as e:
            log.error('episode %s is complete but not yet in the replay (%s): retried at the next start',
                      folder.name, e)

    # --- completion -------------------------------------------------------------------------------------
    def recover(self, last_added: str = '') -> int:
        """At start: complete every episode left complete in incoming/ by a crash; returns how many.
        `last_added`: the source of the replay's newest episode (its folder may have outlived the crash)."""
        done = 0
        for folder in sorted(p for p in self.incoming.iterdir() if p.is_dir()):
            if folder.name == last_added:
                shutil.rmtree(folder)                 # in the replay already: killed before the folder went
                continue
            parts = self._scanned(folder)
            if parts.complete():
                self._complete(folder, parts)
                done += 1
        if done:
            log.info('%d complete episodes found in %s after a restart: added', done, self.incoming)
        return done

    def _complete(self, folder: Path, parts: EpisodeParts) -> None:
        for part in parts.parts.values():             # a chunk written but not logged (crash): its resend is
            if not self.is_stored(part.chunk_id):     # a duplicate now, not a new chunk of a gone episode
                self._logged(part.chunk_id, part.steps)
        chunks = self._read(folder)
        if chunks is None:
            return
        if final_image_key(FRONT) not in chunks[-1][1] or parts.last.episode_steps < 2:
            log.warning('episode %s: %d steps and no final frame: not stored as an episode', folder.name,
                        parts.last.episode_steps)
        else:
            self._deliver(folder.name, chunks)
        shutil.rmtree(folder)
        self._episodes.pop(folder.name, None)

    def _read(self, folder: Path) -> list[tuple[dict, dict]] | None:
        chunks = []
        for path in sorted(folder.glob('*.npz')):
            try:
                with open_npz(path) as data:
                    chunks.append((json.loads(str(data['meta'])), {k: data[k] for k in data.files if k != 'meta'}))
            except READ_ERRORS as e:
                log.error('episode %s: %s unreadable (%s): left in incoming/', folder.name, path.name, e)
                return None
        return chunks

    def _deliver(self, key: str, chunks: list[tuple[dict, dict]]) -> None:
        """To the replay, or to unrewarded/ if most rewards are missing."""
        cat = lambda name: np.concatenate([a[name] for _, a in chunks])   # noqa: E731
        final = chunks[-1][1]
        last = next(m['last'] for m, _ in chunks if m.get('last'))
        rewards = cat('reward')
        episode, missing = self.format(
            frames={cam: np.concatenate([cat(image_key(cam)), final[final_image_key(cam)]]) for cam in self.cameras},
            states=np.concatenate([cat('state'), final['final_state']]), actions=cat('action'),
            rewards=rewards, success=bool(last.get('success')), interventions=cat('intervention'),
            instruction=str(chunks[0][0].get('instruction', '')))
        episode[SOURCE_KEY] = np.array(key)
        if 'instruction_embedding' not in episode:
            self._keep_aside(self.uninstructed, key, episode)
            self.episodes_uninstructed += 1
            log.warning('episode %s ran without an instruction (it started before one was set): kept out of the '
                        'replay, in %s', key, self.uninstructed)
            return
        if missing > self.max_missing_rewards * len(rewards):
            episode['reward'] = rewards.astype(np.float32)          # NaN kept: relabel before training on it
            self._keep_unrewarded(key, episode, missing)
            return
        if missing:
            self.rewards_missing += missing
            log.warning('episode %s: %d of %d rewards missing, stored as 0', key, missing, len(rewards))
        self.add_episode(episode)
        self.episodes_completed += 1

    @staticmethod
    def _keep_aside(folder: Path, key: str, episode: dict[str, np.ndarray]) -> None:
        """An episode the replay cannot take yet, kept on disk (nothing acknowledged is lost)."""
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **episode)
        atomic_write_bytes(folder / f'{key}.npz', buffer.getvalue())

    def _keep_unrewarded(self, key: str, episode: dict[str, np.ndarray], missing: int) -> None:
        self._keep_aside(self.unrewarded, key, episode)
        self.episodes_unrewarded += 1
        log.warning('episode %s: %d of %d rewards missing: kept out of the replay, in %s', key, missing,
                    len(episode['reward']), self.unrewarded)

    def format(self, frames: dict[str, np.ndarray], states: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               success: bool, interventions: np.ndarray, instruction: str) -> tuple[dict[str, np.ndarray], int]:
        """An episode in the training replay's format (training/replay.py) from robot-side arrays: frames of
        each camera and contract states [T+1], actions, rewards (of o_{t+1}; NaN = missing, stored as 0) and
        flags [T]. Returns it and the count of missing rewards. Without an instruction it has no
        instruction_embedding."""
        rewards = np.asarray(rewards, np.float32).copy()
        missing = ~np.isfinite(rewards)
        rewards[missing] = 0.0
        flags = np.zeros(len(rewards), bool)
        flags[-1] = success
        episode = {**{image_key(cam): self._resize(frames[cam]) for cam in self.cameras},
                   'state': states[:, self.state_index].astype(np.float32),
                   'action': np.asarray(actions, np.float32), 'reward': rewards, 'success': flags,
                   'intervention': np.asarray(interventions, bool), 'instruction': np.array(instruction)}
        if instruction.strip():
            episode['instruction_embedding'] = np.asarray(self.embed(instruction), np.float32)
        return episode, int(missing.sum())

    def _resize(self, frames: np.ndarray) -> np.ndarray:
        if frames.shape[1:3] == (self.image_size, self.image_size):
            return frames
        return np.stack([cv2.resize(f, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                         for f in frames])

    def close(self) -> None:
        self._log.close()
