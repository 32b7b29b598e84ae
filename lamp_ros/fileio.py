"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of it. And npz reads
that two threads can do at once (open_npz)."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

_NPY_HEADERS = threading.Lock()


@contextmanager
def open_npz(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """np.load(path, allow_pickle=False), its arrays read under one process-wide lock. Why: NumPy parses each
    array's header with ast.literal_eval, and CPython 3.11 counts the AST constructor's recursion depth per
    interpreter, not per thread, so two threads parsing at once can fail with "SystemError: AST constructor
    recursion depth mismatch" (python/cpython#106905). The learner reads chunks in its link thread while its
    training thread reads replay episodes: that killed a learner's link thread once."""
    with _NPY_HEADERS, np.load(path, allow_pickle=False) as data:
        yield data


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode(), mode=mode)


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True, mode: int = 0o644) -> None:
    """Write via a temporary file in the same directory, then rename: readers see old or new, never half.

    With fsync (default) the data is on the disk before the rename, so it also survives a power cut; without,
    it survives any crash of the process (the kernel still holds it) at a fraction of the cost. The file gets
    `mode` (mkstemp's 0600 would make bundles and configs unreadable to others once copied or installed)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def move_dir_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename a finished directory to `out`; an old one there is renamed away first, then deleted, so `out`
    is always a complete directory (old or new)."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if not overwrite:
        raise FileExistsError(f'{out} appeared during the export; not replacing it')
    old = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
    os.rename(out, old / out.name)
    os.rename(tmp, out)
    shutil.rmtree(old)
