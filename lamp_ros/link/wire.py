"""Messages between the robot and the learner: zmq multipart frames [kind, JSON header, array buffers...].

Arrays travel as raw buffers (no pickling, no copies on send; `np.frombuffer` views on receive), described
by the header (name, dtype, shape), so either side can be in any language and a malformed message is
rejected with a reason instead of being unpickled.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

PROTOCOL = 1
KINDS = ('hello', 'chunk', 'ack', 'ping', 'pong', 'bundle', 'bundle_ack')
_DTYPES = ('uint8', 'int8', 'int32', 'int64', 'float32', 'float64', 'bool')


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
        frames.append(memoryview(a).cast('B'))
    blob_names = []
    for name, b in msg.blobs.items():
        blob_names.append(name)
        frames.append(b)
    header = {'protocol': PROTOCOL, 'meta': msg.meta, 'arrays': specs, 'blobs': blob_names}
    return [msg.kind.encode(), json.dumps(header).encode()] + frames


def decode(frames: Sequence[Any]) -> Message:
    """Frames as bytes, memoryviews or zmq.Frame (zero-copy); raises WireError on anything malformed."""
    buffers = [f.buffer if hasattr(f, 'buffer') else f for f in frames]
    if len(buffers) < 2:
        raise WireError(f'a message has at least 2 frames, got {len(buffers)}')
    kind = bytes(buffers[0]).decode(errors='replace')
    if kind not in KINDS:
        raise WireError(f'unknown message kind {kind!r}')
    try:
        header = json.loads(bytes(buffers[1]))
        specs, blob_names, meta = header['arrays'], header['blobs'], header['meta']
    except (ValueError, KeyError, TypeError) as e:
        raise WireError(f'{kind}: unreadable header ({e})') from e
    if header.get('protocol') != PROTOCOL:
        raise WireError(f'{kind}: protocol {header.get("protocol")!r}, this side speaks {PROTOCOL}')
    payload = buffers[2:]
    if len(payload) != len(specs) + len(blob_names):
        raise WireError(f'{kind}: header announces {len(specs)} arrays + {len(blob_names)} blobs, '
                        f'got {len(payload)} frames')
    arrays = {}
    for spec, buf in zip(specs, payload):
        dtype, shape = spec.get('dtype'), tuple(spec.get('shape', ()))
        if dtype not in _DTYPES:
            raise WireError(f'{kind}: array {spec.get("name")!r} has dtype {dtype!r}')
        a = np.frombuffer(buf, dtype=dtype)
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise WireError(f'{kind}: array {spec["name"]!r} has {a.size} values, header says shape {list(shape)}')
        arrays[spec['name']] = a.reshape(shape)
    blobs = {name: bytes(buf) for name, buf in zip(blob_names, payload[len(specs):])}
    return Message(kind, meta, arrays, blobs)


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
    if sum(lengths) != len(body):
        raise WireError(f'packed message is {len(body)} bytes, its header says {sum(lengths)} (torn write?)')
    out, pos = [], 0
    for n in lengths:
        out.append(body[pos:pos + n])
        pos += n
    return out
