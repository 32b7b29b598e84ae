"""ROS 2 bags as rosbag2 directories of one MCAP file, written in pure Python (the `mcap` package): what
`ros2 bag record -s mcap` writes (`<bag>/<bag>_0.mcap` and `<bag>/metadata.yaml`, rosbag2 metadata version 9),
so `ros2 bag info|play <bag>`, Foxglove and the mcap tools read it.

Messages are stored as received (CDR bytes, no re-encoding); each type's schema is its .msg definition
with its dependencies appended (the 'ros2msg' encoding), generated from the rosidl message class, so no
.msg files or ament index are needed.
"""
from __future__ import annotations

import importlib
import io
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from mcap.writer import Writer

SEPARATOR = '=' * 80
ROSBAG2_VERSION = 9                  # the metadata version of rosbag2 on Jazzy and Kilted
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


def write_bag(directory: Path, messages: Iterable[BagMessage]) -> Path:
    """A rosbag2 directory holding the messages (in the order given) in one MCAP file (zstd chunks, indexed) and
    its metadata.yaml; written in a temporary directory renamed into place (a reader never sees half a bag)."""
    directory = Path(directory)
    messages = list(messages)
    if not messages:
        raise ValueError('a bag needs at least one message')
    name = f'{directory.name}_0.mcap'
    tmp = directory.parent / f'.{directory.name}.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / name).write_bytes(_mcap_bytes(messages))
    (tmp / 'metadata.yaml').write_text(yaml.safe_dump(bag_metadata(name, messages), sort_keys=False))
    os.replace(tmp, directory)
    return directory


def _mcap_bytes(messages: list[BagMessage]) -> bytes:
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
    return buffer.getvalue()


def bag_metadata(file_name: str, messages: list[BagMessage]) -> dict:
    """rosbag2's metadata.yaml (version 9) for one storage file. No offered QoS is recorded (playback uses the
    defaults) and no type description hash (rclpy does not expose it)."""
    start = min(m.log_time_ns for m in messages)
    duration = max(m.log_time_ns for m in messages) - start
    counts = Counter(m.topic for m in messages)
    types = {m.topic: type_name(m.msg_type) for m in messages}
    return {'rosbag2_bagfile_information': {
        'version': ROSBAG2_VERSION, 'storage_identifier': 'mcap', 'relative_file_paths': [file_name],
        'duration': {'nanoseconds': duration}, 'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': len(messages),
        'topics_with_message_count': [
            {'topic_metadata': {'name': topic, 'type': types[topic], 'serialization_format': 'cdr',
                                'offered_qos_profiles': [], 'type_description_hash': ''},
             'message_count': count} for topic, count in counts.items()],
        'compression_format': '', 'compression_mode': '',
        'files': [{'path': file_name, 'starting_time': {'nanoseconds_since_epoch': start},
                   'duration': {'nanoseconds': duration}, 'message_count': len(messages)}],
        'custom_data': None, 'ros_distro': 'lamp_ros'}}
