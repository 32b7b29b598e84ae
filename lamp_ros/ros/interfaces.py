"""The contract's topics as rclpy objects: QoS profiles (valid on Humble, Jazzy and Kilted) and message classes."""
from __future__ import annotations

import importlib

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from lamp_ros.contract import Qos, Topic


def profile(qos: Qos | Topic) -> QoSProfile:
    if isinstance(qos, Topic):
        qos = qos.qos
    if qos is Qos.SENSOR:
        return qos_profile_sensor_data
    if qos is Qos.RELIABLE:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if qos is Qos.LATCHED:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    raise ValueError(f'unknown QoS class {qos!r}')


def message_class(topic: Topic) -> type:
    """'sensor_msgs/Image' -> sensor_msgs.msg.Image"""
    package, name = topic.msg_type.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)
