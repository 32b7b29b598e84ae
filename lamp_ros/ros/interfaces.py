"""The contract's topics as rclpy objects: QoS profiles (valid on Humble, Jazzy and Kilted) and message classes."""
from __future__ import annotations

import importlib

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from lamp_ros.contract import Qos, Topic


def profile(qos: Qos | Topic) -> QoSProfile:
    """The profile to subscribe with (and to publish with, except for Qos.STATE: publisher_profile)."""
    if isinstance(qos, Topic):
        qos = qos.qos
    if qos in (Qos.SENSOR, Qos.STATE):
        return qos_profile_sensor_data
    if qos is Qos.RELIABLE:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    if qos is Qos.LATCHED:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    raise ValueError(f'unknown QoS class {qos!r}')


def publisher_profile(topic: Topic) -> QoSProfile:
    """The profile to publish with: reliable for robot state (it reaches best-effort and reliable subscribers
    alike), else the topic's profile."""
    if topic.qos is Qos.STATE:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    return profile(topic)


def message_class(topic: Topic) -> type:
    """'sensor_msgs/Image' -> sensor_msgs.msg.Image"""
    package, name = topic.msg_type.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)
