"""Relabel stored episodes with video-language rewards for many instructions at once.

LAMP relabels with r_t = R(o_0, o_t, l) and recomputes both frame embeddings for every (frame, instruction)
it scores. Here each frame is embedded once (and cached, in memory and optionally on disk by episode id),
each instruction once, and only the reward head runs per (frame, instruction): for 40 instructions that is
~80x fewer image encoder passes (bench/relabel.py measures it). Works with any `RewardModel`.
"""
from __future__ import annotations

import hashlib
import io
import re
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from lamp_ros.fileio import atomic_write_bytes
from models.reward_model import RewardModel

HEAD_ROWS = 8192   # (frame, instruction) rows per score call: big enough for efficient matrix products
_SAFE_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}')


def frames_fingerprint(frames: np.ndarray) -> str:
    """A digest of an episode's pixels and shape: a cached embedding is only reused for the same frames."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f'{frames.dtype}{frames.shape}'.encode())
    h.update(np.ascontiguousarray(frames).data)
    return h.hexdigest()


class FrameEmbeddingCache:
    """Frame embeddings of episodes under one model, computed once per frame.

    Kept in memory (the `memory_episodes` most recently used episodes); with `directory`, also as
    DIR/<model name>/<episode id>.npz (written atomically), so a later run (another instruction list) skips the
    image encoder. An entry whose frames changed (another fingerprint) is recomputed and replaced.
    """

    def __init__(self, model_name: str, directory: Path | None = None, memory_episodes: int = 256) -> None:
        if not _SAFE_NAME.fullmatch(model_name):
            raise ValueError(f'model name {model_name!r} cannot name a cache directory')
        if memory_episodes < 1:
            raise ValueError(f'memory_episodes must be >= 1, got {memory_episodes}')
        self.model_name = model_name
        self.directory = Path(directory) / model_name if directory is not None else None
        self.memory_episodes = memory_episodes
        self._memory: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self.computed = 0       # episodes embedded by the model
        self.memory_hits = 0
        self.disk_hits = 0

    def embeddings(self, model: RewardModel, episode_id: str, frames: np.ndarray) -> np.ndarray:
        """float32 [T, D] embeddings of `frames` (uint8 [T, H, W, 3]), from the cache when the frames match."""
        if model.name != self.model_name:
            raise ValueError(f'cache holds embeddings of {self.model_name!r}, not of {model.name!r}')
        if not _SAFE_NAME.fullmatch(episode_id):
            raise ValueError(f'episode id {episode_id!r}: use letters, digits and ._@+- (it names a cache file)')
        fingerprint = frames_fingerprint(frames)
        hit = self._memory.get(episode_id)
        if hit is not None and hit[0] == fingerprint:
            self.memory_hits += 1
            self._memory.move_to_end(episode_id)
            return hit[1]
        embeddings = self._read(episode_id, fingerprint)
        if embeddings is not None:
            self.disk_hits += 1
        else:
            embeddings = model.embed_images(frames)
            self.computed += 1
            self._write(episode_id, fingerprint, embeddings)
        self._memory[episode_id] = (fingerprint, embeddings)
        self._memory.move_to_end(episode_id)
        while len(self._memory) > self.memory_episodes:
            self._memory.popitem(last=False)
        return embeddings

    def _path(self, episode_id: str) -> Path | None:
        return self.directory / f'{episode_id}.npz' if self.directory is not None else None

    def _read(self, episode_id: str, fingerprint: str) -> np.ndarray | None:
        path = self._path(episode_id)
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            if str(data['fingerprint']) != fingerprint:
                return None
            return data['embeddings'].astype(np.float32, copy=False)

    def _write(self, episode_id: str, fingerprint: str, embeddings: np.ndarray) -> None:
        path = self._path(episode_id)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=embeddings, fingerprint=np.array(fingerprint))
        atomic_write_bytes(path, buffer.getvalue())


def relabel(model: RewardModel, episodes: Mapping[str, np.ndarray], instructions: Sequence[str],
            cache: FrameEmbeddingCache | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Rewards of every (episode, frame, instruction): episode id -> float32 [T, len(instructions)].

    Reward of frame t under instruction i is model.score(e(o_0), e(o_t), l_i), o_0 the episode's first frame.
    """
    instructions = list(instructions)
    if not instructions:
        raise ValueError('no instructions to relabel with')
    cache = cache if cache is not None else FrameEmbeddingCache(model.name)
    language = model.embed_instructions(instructions)
    out = {}
    for episode_id, frames in tqdm(episodes.items(), desc='relabel', unit='episode', disable=not progress):
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or not len(frames):
            shape = frames.shape if isinstance(frames, np.ndarray) else type(frames).__name__
            raise ValueError(f'episode {episode_id!r}: frames must be uint8 [T>=1, H, W, 3], got {shape}')
        embedded = cache.embeddings(model, episode_id, frames)
        rewards = np.empty((len(frames), len(instructions)), np.float32)
        # The head on many rows at once: (frame, instruction) pairs of a group of instructions per call.
        group = max(1, HEAD_ROWS // len(frames))
        for start in range(0, len(instructions), group):
            lang = language[start:start + group]
            current = np.repeat(embedded, len(lang), axis=0)          # row t * len(lang) + i: frame t, instruction i
            scores = model.score(embedded[:1], current, np.tile(lang, (len(frames), 1)))
            rewards[:, start:start + len(lang)] = scores.reshape(len(frames), len(lang))
        out[episode_id] = rewards
    return out
