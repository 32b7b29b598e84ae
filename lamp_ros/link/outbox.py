"""Durable outbox: every chunk of transitions is on disk before it is sent and stays there until the learner
acknowledges it, so a learner crash, a network drop or a robot-side restart loses nothing; what is pending
is sent again, in order, when the learner is back (the learner ignores ids it already stored).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from lamp_ros.fileio import atomic_write_bytes
from lamp_ros.link.wire import WireError, pack, unpack

SUFFIX = '.chunk'
REFUSED_SUFFIX = '.refused'         # refused for good by the learner: kept, no longer sent (rename to resend)
log = logging.getLogger(__name__)


class Outbox:
    """Chunk ids are '<session>-<seq>': unique across restarts without any counter on disk. File names start
    with a nanosecond timestamp, so name order is creation order, also across sessions. Thread-safe.

    `fsync=False` (the default) keeps every chunk through a crash or kill of any process, not through a power
    cut of the robot computer; `fsync=True` also through that, at a cost (bench/link_throughput.py).
    Chunks put in this session are also kept in memory (up to `memory_bytes`), so sending them reads no disk."""

    def __init__(self, directory: Path, fsync: bool = False, memory_bytes: int = 256 << 20) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[str, list] = OrderedDict()
        self._memory_used = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._session = uuid.uuid4().hex[:12]
        self._seq = 0
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, Path] = OrderedDict(
            (path.stem.split('_', 1)[1], path) for path in sorted(self.directory.glob(f'*{SUFFIX}')))
        if self._pending:
            log.info('outbox %s: %d chunks from an earlier run will be sent', self.directory, len(self._pending))

    def new_id(self) -> str:
        with self._lock:
            self._seq += 1
            return f'{self._session}-{self._seq:09d}'

    def put(self, chunk_id: str, frames: list) -> None:
        """Persist one encoded message under its id (returns once it is on disk)."""
        path = self.directory / f'{time.time_ns():020d}_{chunk_id}{SUFFIX}'
        atomic_write_bytes(path, pack(frames), fsync=self.fsync)
        with self._lock:
            self._pending[chunk_id] = path
            self._memory[chunk_id] = frames
            self._memory_used += frames_size(frames)
            while self._memory_used > self.memory_bytes and self._memory:
                _, old = self._memory.popitem(last=False)
                self._memory_used -= frames_size(old)

    def pending(self) -> list[tuple[str, Path]]:
        """(chunk id, file) of every unacknowledged chunk, oldest first."""
        with self._lock:
            return list(self._pending.items())

    def load(self, chunk_id: str) -> list[bytes] | None:
        """The frames of a pending chunk, or None (with a warning; the file is set aside) if unreadable."""
        with self._lock:
            path = self._pending.get(chunk_id)
            frames = self._memory.get(chunk_id)
        if frames is not None:
            return frames
        if path is None:
            return None
        try:
            return unpack(path.read_bytes())
        except (OSError, WireError) as e:
            bad = path.with_suffix('.unreadable')
            log.warning('outbox: %s is unreadable (%s); moved to %s, not sent', path.name, e, bad.name)
            os.replace(path, bad)
            with self._lock:
                self._pending.pop(chunk_id, None)
            return None

    def ack(self, chunk_id: str) -> bool:
        """Delete an acknowledged chunk; False if it was not pending (a duplicate ack)."""
        path = self._take(chunk_id)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    def set_aside(self, chunk_id: str) -> bool:
        """Keep a chunk the learner refused for good on disk, out of the backlog; False if it was not pending."""
        path = self._take(chunk_id)
        if path is None:
            return False
        os.replace(path, path.with_suffix(REFUSED_SUFFIX))
        return True

    def _take(self, chunk_id: str) -> Path | None:
        """Remove a chunk from the backlog (and the memory cache); its file, or None if it was not pending."""
        with self._lock:
            path = self._pending.pop(chunk_id, None)
            frames = self._memory.pop(chunk_id, None)
            if frames is not None:
                self._memory_used -= frames_size(frames)
        return path

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


def frames_size(frames: list) -> int:
    """Bytes of an encoded message."""
    return sum(memoryview(f).nbytes for f in frames)

