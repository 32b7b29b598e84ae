"""Teleoperation: device back-ends (keyboard, SpaceMouse, gamepad) behind one small interface (device.py),
and the session logic that turns what the operator does into the 4-D action (session.py). The teleop node
(lamp_ros.nodes.teleop) publishes that action on teleop/action while the operator is using the device; the
safety node lets it take over from the policy and flags those steps as interventions.

No ROS in this package: the node is thin, and each part is tested without a device or a graph.
"""
from __future__ import annotations
