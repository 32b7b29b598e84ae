"""pose_target node over real topics, against a named fake of a Cartesian impedance controller (none exists
here): it follows the safety layer's twist as a pose target on the controller's topic, holds the arm's
orientation, and publishes nothing without a fresh end-effector pose."""
import numpy as np

from lamp_ros import contract as c
from lamp_ros.contract import Qos, Topic
from lamp_ros.ros.convert import pose_arrays, pose_msg, twist_msg

CONTROLLER = Topic('/fake_impedance_controller/equilibrium_pose', 'geometry_msgs/PoseStamped', Qos.SENSOR,
                   "FAKE of franka_ros2's cartesian impedance controller input")


def test_the_safe_twist_becomes_a_pose_target_and_stops_without_a_pose(nodes, probe):
    nodes.start('pose_target', {'target_topic': CONTROLLER.name, 'control_rate_hz': 10.0})
    targets = probe.record(CONTROLLER)
    arm = np.array([0.45, 0.0, 0.2])
    tilted = np.array([0.0, 1.0, 0.0, 0.0])                       # the arm's orientation (w x y z)

    def tick(velocity):
        stamp = probe.node.get_clock().now().to_msg()
        probe.publish(c.EE_POSE, pose_msg(arm, tilted, stamp, 'base'))
        probe.spin_for(0.02)
        probe.publish(c.EE_TWIST_CMD, twist_msg(np.asarray(velocity, float), stamp, 'base'))
        probe.spin_for(0.08)

    assert probe.wait_for(lambda: bool(targets), 20, lambda: tick([0.1, 0.0, 0.0])), nodes.log('pose_target')
    before = len(targets)
    tick([0.1, 0.0, 0.0])                                          # the arm does not move (blocked): the lead
    assert probe.wait_for(lambda: len(targets) > before, 5)        # grows by v * dt up to max_lead_m
    position, orientation = pose_arrays(targets[-1][1])
    assert 0.0 < position[0] - arm[0] <= 0.03 + 1e-9 and np.allclose(position[1:], arm[1:])
    assert np.allclose(orientation, tilted) and targets[-1][1].header.frame_id == 'base'
    tick([0.0, 0.0, 0.0])                                          # a stop: the target rests on the arm
    assert probe.wait_for(lambda: np.allclose(pose_arrays(targets[-1][1])[0], arm), 5)

    probe.spin_for(0.3)                                            # the pose stops coming: no target
    count = len(targets)
    for _ in range(5):
        probe.publish(c.EE_TWIST_CMD, twist_msg(np.array([0.1, 0.0, 0.0]), probe.node.get_clock().now().to_msg(),
                                                'base'))
        probe.spin_for(0.1)
    assert len(targets) == count and 'no fresh robot/ee_pose' in nodes.log('pose_target')
    assert nodes.alive('pose_target')
