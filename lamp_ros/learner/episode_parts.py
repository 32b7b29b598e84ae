"""Which chunks of an incomplete episode are stored, and whether a new chunk fits them.

A chunk the link accepted can still contradict its episode: images of another size, steps that overlap a
stored chunk, a second last chunk, steps beyond the episode's end. Stored, such a chunk would keep the
episode from ever completing (its arrays could not be joined, its steps never add up), so it is refused
before it is acknowledged. The index is rebuilt from the episode's folder (file names and chunk contents)
the first time an episode is touched after a start.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from lamp_ros.fileio import open_npz

LAST_CHUNK_SUFFIX = '.last.npz'             # the chunk that ends an episode (success, label, o_T)
UNREADABLE_SUFFIX = '.unreadable'
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Part:
    first: int                   # first step
    steps: int
    chunk_id: str
    episode_steps: int | None    # the last chunk only: the episode's length

    @property
    def end(self) -> int:
        return self.first + self.steps


@dataclass
class EpisodeParts:
    sides: tuple[int, int] | None = None         # image height, width of the stored chunks
    parts: dict[str, Part] = field(default_factory=dict)     # chunk id -> part

    def conflict(self, new: Part, sides: tuple[int, int]) -> str:
        """Why `new` cannot join the stored chunks ('' if it can; the same chunk id again always can)."""
        if new.chunk_id in self.parts:
            return ''
        if self.sides is not None and sides != self.sides:
            return f'images are {sides[0]}x{sides[1]}, its stored chunks {self.sides[0]}x{self.sides[1]}'
        for old in self.parts.values():
            problem = _clash(old, new)
            if problem:
                return problem
        return ''

    def add(self, part: Part, sides: tuple[int, int]) -> None:
        self.sides = sides
        self.parts[part.chunk_id] = part

    def complete(self) -> bool:
        """The last chunk is here and the chunks cover steps 0 .. its end without a gap."""
        last = self.last
        if last is None:
            return False
        position = 0
        for part in sorted(self.parts.values(), key=lambda p: (p.first, p.episode_steps is not None)):
            if part.first != position:
                return False
            position = part.end
        return position == last.episode_steps

    @property
    def last(self) -> Part | None:
        return next((p for p in self.parts.values() if p.episode_steps is not None), None)


def _clash(old: Part, new: Part) -> str:
    if old.episode_steps is not None and new.episode_steps is not None:
        return f'the episode already has its last chunk ({old.chunk_id})'
    if old.episode_steps is not None and new.end > old.episode_steps:
        return f'steps {new.first}..{new.end} are beyond the episode\'s end at step {old.episode_steps}'
    if new.episode_steps is not None and old.end > new.episode_steps:
        return f'it ends the episode at step {new.episode_steps}, chunk {old.chunk_id} reaches step {old.end}'
    if max(old.first, new.first) < min(old.end, new.end):
        return f'steps {new.first}..{new.end} overlap chunk {old.chunk_id} ({old.first}..{old.end})'
    return ''


def chunk_file(folder: Path, part: Part) -> Path:
    suffix = LAST_CHUNK_SUFFIX if part.episode_steps is not None else '.npz'
    return folder / f'{part.first:07d}_{part.chunk_id}{suffix}'


def scan(folder: Path) -> tuple[EpisodeParts, list[str]]:
    """The index of an episode folder, and the problems met: a chunk file that cannot be read (which atomic
    writes make a disk fault) is renamed *.unreadable and named in the problems."""
    index, problems = EpisodeParts(), []
    for path in sorted(folder.glob('*.npz')):
        try:
            with open_npz(path) as data:
                meta = json.loads(str(data['meta']))
                part = Part(int(meta['first_step']), len(data['action']), str(meta['chunk_id']),
                            int(meta['last']['steps']) if meta.get('last') else None)
                sides = tuple(data['image_front'].shape[1:3])
        except READ_ERRORS as e:
            path.rename(path.with_name(path.name + UNREADABLE_SUFFIX))
            problems.append(f'{path.name} unreadable ({type(e).__name__}: {e}); renamed *{UNREADABLE_SUFFIX}')
            continue
        index.add(part, sides)
    return index, problems
