"""Messages between the robot and the learner: zmq multipart frames [kind, JSON header, array buffers...].

Arrays travel as raw buffers (no pickling, no copies on send; `np.frombuffer` views on receive), described
by the header (name, dtype, shape), so either side can be in any language and a malformed message is
rejected with a reason instead of being unpickled. `decode` trusts nothing in the frames: every field of the
header is type-checked and every buffer's length is compared with its declared shape *before* numpy sees
it, so a lying header (a shape of 10^12 values, a buffer not a multiple of its dtype size) is a WireError,
never an allocation or an exception of another type.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

PROTOCOL = 1
KINDS = ('hello', 'welcome', 'refused', 'chunk', 'ack', 'ping', 'pong', 'bundle', 'bundle_ack')
_DTYPES = ('uint8', 'int8', 'int32', 'int64', 'float32', 'float64', 'bool')
MAX_HEADER_BYTES = 1 << 20          # a chunk's header is ~300 bytes; a bundle's lists its files
MAX_DIMS = 8
MAX_DIM = 1 << 31
_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}')     # array names; blob names are bundle paths


class WireError(ValueError):
    """A message that does not follow the protocol; the text says how."""


@dataclass
class Message:
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)     # raw bytes (e.g. bundle files)


def encode(msg: Message) -> list[bytes | memoryview]:
    if msg.kind not in KINDS:
        raise WireError(f'unknown message kind {msg.kind!r}')
    specs, frames = [], []
    for name, a in msg.arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.name not in _DTYPES:
            raise WireError(f'array {name!r} has dtype {a.dtype}, not one of {_DTYPES}')
        specs.append({'name': name, 'dtype': a.dtype.name, 'shape': list(a.shape)})
        frames.append(memoryview(a.reshape(-1).view(np.uint8)) if a.size else b'')   # cast('B') fails on 0 in a shape
    blob_names = []
    for name, b in msg.blobs.items():
        blob_names.append(name)
        frames.append(b)
    header = {'protocol': PROTOCOL, 'meta': msg.meta, 'arrays': specs, 'blobs': blob_names}
    return [msg.kind.encode(), json.dumps(header).encode()] + frames


def buffers(frames: Sequence[Any]) -> list[memoryview]:
    """Frames as bytes, memoryviews or zmq.Frame (zero-copy) -> flat byte views."""
    return [memoryview(f.buffer if hasattr(f, 'buffer') else f).cast('B') for f in frames]


def decode(frames: Sequence[Any]) -> Message:
    """Raises WireError on anything malformed (and nothing else on any input)."""
    views = buffers(frames)
    if len(views) < 2:
        raise WireError(f'a message has at least 2 frames, got {len(views)}')
    kind = _kind(views[0])
    meta, specs, blob_names = _header(kind, views[1])
    payload = views[2:]
    if len(payload) != len(specs) + len(blob_names):
        raise WireError(f'{kind}: header announces {len(specs)} arrays + {len(blob_names)} blobs, '
                        f'got {len(payload)} frames')
    arrays = {}
    for spec, buf in zip(specs, payload):
        name, a = _array(kind, spec, buf)
        if name in arrays:
            raise WireError(f'{kind}: array {name!r} twice')
        arrays[name] = a
    blobs = {name: bytes(buf) for name, buf in zip(blob_names, payload[len(specs):])}
    if len(blobs) != len(blob_names):
        raise WireError(f'{kind}: a blob name appears twice')
    return Message(kind, meta, arrays, blobs)


def peek_meta(frames: Sequence[Any]) -> dict[str, Any]:
    """The header's meta of a message that may be refused (to name its chunk in the refusal); {} if unreadable."""
    views = buffers(frames)
    if len(views) < 2:
        return {}
    try:
        return _header('?', views[1])[0]
    except WireError:
        return {}


def _kind(view: memoryview) -> str:
    if view.nbytes > 32:
        raise WireError(f'message kind frame of {view.nbytes} bytes')
    kind = bytes(view).decode('ascii', errors='replace')
    if kind not in KINDS:
        raise WireError(f'unknown message kind {kind!r}')
    return kind


def _header(kind: str, view: memoryview) -> tuple[dict, list, list]:
    header = _json(kind, view)
    if header.get('protocol') != PROTOCOL:
        raise WireError(f'{kind}: protocol {str(header.get("protocol"))[:20]!r}, this side speaks {PROTOCOL}')
    meta, specs, blob_names = header.get('meta'), header.get('arrays'), header.get('blobs')
    if not isinstance(meta, dict):
        raise WireError(f'{kind}: meta is a {type(meta).__name__}, not an object')
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise WireError(f'{kind}: "arrays" is not a list of objects')
    if not isinstance(blob_names, list) or not all(isinstance(b, str) and _NAME.fullmatch(b) for b in blob_names):
        raise WireError(f'{kind}: "blobs" is not a list of file names')
    return meta, specs, blob_names


def _json(kind: str, view: memoryview) -> dict:
    if view.nbytes > MAX_HEADER_BYTES:
        raise WireError(f'{kind}: header of {view.nbytes} bytes (at most {MAX_HEADER_BYTES})')
    try:
        header = json.loads(bytes(view))
    except (ValueError, RecursionError) as e:        # RecursionError: '[[[[...' nested too deep
        raise WireError(f'{kind}: unreadable header ({type(e).__name__}: {str(e)[:100]})') from e
    if not isinstance(header, dict):
        raise WireError(f'{kind}: header is a {type(header).__name__}, not an object')
    return header


def _array(kind: str, spec: dict, buf: memoryview) -> tuple[str, np.ndarray]:
    name, dtype, shape = spec.get('name'), spec.get('dtype'), spec.get('shape')
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise WireError(f'{kind}: array name {str(name)[:40]!r} is not a name')
    if dtype not in _DTYPES:
        raise WireError(f'{kind}: array {name!r} has dtype {str(dtype)[:20]!r}, not one of {_DTYPES}')
    if not _is_shape(shape):
        raise WireError(f'{kind}: array {name!r} has shape {str(shape)[:60]}, not a list of '
                        f'at most {MAX_DIMS} sizes in [0, 2^31)')
    count = 1
    for d in shape:
        count *= d                                   # Python ints: no overflow
    itemsize = np.dtype(dtype).itemsize
    if count * itemsize != buf.nbytes:
        raise WireError(f'{kind}: array {name!r} has {buf.nbytes} bytes, header says shape {shape} of {dtype} '
                        f'({count * itemsize} bytes)')
    return name, np.frombuffer(buf, dtype=dtype).reshape(shape)


def _is_shape(shape: Any) -> bool:
    return (isinstance(shape, list) and len(shape) <= MAX_DIMS
            and all(type(d) is int and 0 <= d < MAX_DIM for d in shape))


def pack(frames: Sequence[bytes | memoryview]) -> bytes:
    """Frames -> one byte string (for the outbox file): JSON list of lengths, newline, concatenated frames."""
    lengths = [len(memoryview(f).cast('B')) for f in frames]
    return json.dumps(lengths).encode() + b'\n' + b''.join(bytes(f) for f in frames)


def unpack(data: bytes) -> list[bytes]:
    head, _, body = data.partition(b'\n')
    try:
        lengths = json.loads(head)
    except ValueError as e:
        raise WireError(f'packed message with an unreadable length list ({e})') from e
    if not isinstance(lengths, list) or not all(type(n) is int and n >= 0 for n in lengths):
        raise WireError('packed message whose length list is not a list of sizes')
    if sum(lengths) != len(body):
        raise WireError(f'packed message is {len(body)} bytes, its header says {sum(lengths)} (torn write?)')
    out, pos = [], 0
    for n in lengths:
        out.append(body[pos:pos + n])
        pos += n
    return out
