"""ROS 2 bags as MCAP files, written in pure Python (the `mcap` package): what `ros2 bag record -s mcap`
writes, readable by `ros2 bag`, Foxglove and the mcap tools.

Messages are stored as received (CDR bytes, no re-encoding); each type's schema is its .msg definition
with its dependencies appended (the 'ros2msg' encoding), generated from the rosidl message class, so no
.msg files or ament index are needed.
"""
from __future__ import annotations

import importlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mcap.writer import Writer

from lamp_ros.fileio import atomic_write_bytes

SEPARATOR = '=' * 80
_PRIMITIVES = {'boolean': 'bool', 'octet': 'byte', 'char': 'char', 'float': 'float32', 'double': 'float64',
               'int8': 'int8', 'uint8': 'uint8', 'int16': 'int16', 'uint16': 'uint16', 'int32': 'int32',
               'uint32': 'uint32', 'int64': 'int64', 'uint64': 'uint64', 'string': 'string', 'wstring': 'wstring'}


@dataclass(frozen=True)
class BagMessage:
    topic: str                 # fully qualified, e.g. /camera/image_raw
    msg_type: type             # the rosidl message class
    data: bytes                # CDR, as received (a raw subscription's bytes)
    log_time_ns: int           # when the recorder received it
    publish_time_ns: int       # header stamp where the message has one, else log_time_ns


def type_name(msg_type: type) -> str:
    """sensor_msgs.msg.Image -> 'sensor_msgs/msg/Image' (the name rosbag2 gives a schema)."""
    package = msg_type.__module__.split('.')[0]
    return f'{package}/msg/{msg_type.__name__}'


def _message_class(name: str) -> type:
    package, _, msg = name.replace('/msg/', '/').partition('/')
    return getattr(importlib.import_module(f'{package}.msg'), msg)


def _field_type(idl_type: str) -> tuple[str, str | None]:
    """A rosidl field type ('sequence<double>', 'uint8[4]', 'std_msgs/Header') as .msg text, and the nested
    message it names (or None)."""
    suffix = ''
    sequence = re.fullmatch(r'sequence<(.+?)(?:, (\d+))?>', idl_type)
    array = re.fullmatch(r'(.+)\[(\d+)\]', idl_type)
    if sequence:
        idl_type, suffix = sequence[1], f'[<={sequence[2]}]' if sequence[2] else '[]'
    elif array:
        idl_type, suffix = array[1], f'[{array[2]}]'
    if '/' in idl_type:
        return idl_type + suffix, idl_type
    bounded = re.fullmatch(r'(w?string)<=(\d+)', idl_type)
    if bounded:
        return f'{bounded[1]}<={bounded[2]}{suffix}', None
    if idl_type not in _PRIMITIVES:
        raise ValueError(f'field type {idl_type!r} has no .msg equivalent here')
    return _PRIMITIVES[idl_type] + suffix, None


def _fields_text(msg_type: type) -> tuple[str, list[str]]:
    lines, nested = [], []
    for name, idl_type in msg_type.get_fields_and_field_types().items():
        text, dependency = _field_type(idl_type)
        lines.append(f'{text} {name}')
        if dependency is not None:
            nested.append(dependency)
    return '\n'.join(lines) + '\n', nested


def message_definition(msg_type: type) -> str:
    """The 'ros2msg' schema text: the type's fields, then each dependency once under `MSG: pkg/Type`."""
    text, pending = _fields_text(msg_type)
    done: list[str] = []
    while pending:
        dependency = pending.pop(0)
        if dependency in done:
            continue
        done.append(dependency)
        fields, nested = _fields_text(_message_class(dependency))
        text += f'{SEPARATOR}\nMSG: {dependency}\n{fields}'
        pending.extend(nested)
    return text


def write_bag(path: Path, messages: Iterable[BagMessage]) -> Path:
    """One MCAP file (zstd chunks, indexed) with the messages in the order given; written atomically."""
    buffer = io.BytesIO()
    writer = Writer(buffer)
    writer.start(profile='ros2', library='lamp_ros')
    schemas: dict[type, int] = {}
    channels: dict[str, int] = {}
    for sequence, m in enumerate(messages):
        if m.msg_type not in schemas:
            schemas[m.msg_type] = writer.register_schema(type_name(m.msg_type), 'ros2msg',
                                                         message_definition(m.msg_type).encode())
        if m.topic not in channels:
            channels[m.topic] = writer.register_channel(m.topic, 'cdr', schemas[m.msg_type])
        writer.add_message(channels[m.topic], log_time=m.log_time_ns, data=m.data, publish_time=m.publish_time_ns,
                           sequence=sequence)
    writer.finish()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
