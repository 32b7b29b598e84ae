"""The safety node's world in node tests: a feeder that plays camera, arm driver and policy at the control rate."""
import time

import numpy as np

from lamp_ros import contract as c
from lamp_ros.ros.convert import action_msg, image_msg, pose_msg, twist_linear

RATE = 10.0
PERIOD = 1.0 / RATE
SCALE = 0.03


class Feeder:
    """Publishes image, EE pose and action at the control rate, like camera + arm + policy would."""

    def __init__(self, probe, position=(0.5, 0.0, 0.2)):
        self.probe = probe
        self.position = np.array(position)
        self.action = np.array([0.5, 0.0, 0.0, 1.0])
        self.send_images = True
        self.send_actions = True
        self.last_image_t = None
        self.last_action_t = None
        self.image = np.zeros((16, 16, 3), np.uint8)      # the smallest live frame
        self._next = time.monotonic()

    def step(self):
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + PERIOD
        stamp = self.probe.node.get_clock().now().to_msg()
        if self.send_images:
            self.probe.publish(c.CAMERA_IMAGE, image_msg(self.image, stamp, 'camera_front'))
            self.last_image_t = now
        self.probe.publish(c.EE_POSE, pose_msg(self.position, np.array([1.0, 0, 0, 0]), stamp, 'base'))
        if self.send_actions:
            self.probe.publish(c.POLICY_ACTION, action_msg(self.action))
            self.last_action_t = now


def start_safety(nodes, probe):
    """The safety node up and passing commands: (feeder, twists, gripper actions, statuses)."""
    nodes.start('safety', {'control_rate_hz': RATE, 'workspace_min': [0.25, -0.3, 0.02],
                           'workspace_max': [0.75, 0.3, 0.45]})
    twists = probe.record(c.EE_TWIST_CMD)
    grips = probe.record(c.SAFE_GRIPPER_ACTION)
    status = probe.record(c.SAFETY_STATUS)
    feeder = Feeder(probe)
    assert probe.wait_for(lambda: any(np.linalg.norm(twist_linear(m)) > 0 for _, m in twists), 20, feeder.step), \
        'safety node never passed a command: ' + nodes.log('safety')
    return feeder, twists, grips, status
