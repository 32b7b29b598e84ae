"""sim_arm as a real node: it answers twist and gripper commands like an arm driver would."""
import numpy as np
import pytest
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.ros.convert import gripper_opening, image_array, pose_arrays, twist_msg
from sim.robot import ArmConfig


@pytest.fixture
def sim(nodes, probe):
    nodes.start('sim_arm', {'control_rate_hz': 20.0, 'image_size': [64, 64]})
    rec = {t.name: probe.record(t) for t in (c.CAMERA_IMAGE, c.WRIST_CAMERA_IMAGE, c.EE_POSE, c.GRIPPER_STATE)}
    assert probe.wait_for(lambda: all(len(v) > 3 for v in rec.values()), 30), nodes.log('sim_arm')
    return rec


def position(rec):
    return pose_arrays(rec[c.EE_POSE.name][-1][1])[0]


def test_publishes_contract_topics(sim, probe):
    img = sim[c.CAMERA_IMAGE.name][-1][1]
    assert img.encoding == 'rgb8' and image_array(img).shape == (64, 64, 3) and image_array(img).std() > 0
    wrist = {(m.header.stamp.sec, m.header.stamp.nanosec): m for _, m in sim[c.WRIST_CAMERA_IMAGE.name]}
    pairs = [(m, wrist[key]) for _, m in sim[c.CAMERA_IMAGE.name]           # each tick stamps both alike
             if (key := (m.header.stamp.sec, m.header.stamp.nanosec)) in wrist]
    front, same_tick = pairs[-1]
    assert same_tick.header.frame_id == 'camera_wrist' and image_array(same_tick).shape == (64, 64, 3)
    assert not np.array_equal(image_array(same_tick), image_array(front))
    pose = sim[c.EE_POSE.name][-1][1]
    assert pose.header.frame_id == 'base'
    assert gripper_opening(sim[c.GRIPPER_STATE.name][-1][1]) == pytest.approx(1.0, abs=0.05)


def test_twist_moves_the_end_effector_and_timeout_stops_it(sim, probe):
    start = position(sim)
    def push():
        probe.publish(c.EE_TWIST_CMD, twist_msg(np.array([0.1, 0.0, 0.0]), probe.node.get_clock().now().to_msg(),
                                                'base'))
    probe.wait_for(lambda: False, 1.0, push)
    moved = position(sim) - start
    assert 0.06 < moved[0] < 0.14 and abs(moved[1]) < 0.005, moved
    probe.spin_for(0.5)                                            # no more commands: driver watchdog stops
    held = position(sim)
    probe.spin_for(0.5)
    assert np.linalg.norm(position(sim) - held) < 1e-3


def test_twist_in_wrong_frame_is_ignored(sim, probe, nodes):
    start = position(sim)
    probe.wait_for(lambda: False, 0.5, lambda: probe.publish(
        c.EE_TWIST_CMD, twist_msg(np.array([0.1, 0, 0]), probe.node.get_clock().now().to_msg(), 'tool0')))
    assert np.linalg.norm(position(sim) - start) < 1e-3
    assert "expected 'base'" in nodes.log('sim_arm')


def test_gripper_command_and_reset(sim, probe):
    probe.wait_for(lambda: gripper_opening(sim[c.GRIPPER_STATE.name][-1][1]) < 0.1, 5,
                   lambda: probe.publish(c.GRIPPER_CMD, Float64(data=0.0)))
    assert gripper_opening(sim[c.GRIPPER_STATE.name][-1][1]) < 0.1
    probe.wait_for(lambda: False, 0.5, lambda: probe.publish(
        c.EE_TWIST_CMD, twist_msg(np.array([0.0, 0.1, 0.0]), probe.node.get_clock().now().to_msg(), 'base')))
    probe.spin_for(0.5)                                       # a loaded host may still be applying the twists
    response = probe.call(Trigger, c.ROBOT_RESET_SERVICE, Trigger.Request())
    assert response.success and 'episode 1' in response.message
    home = ArmConfig().home_tcp
    probe.wait_for(lambda: np.allclose(position(sim), home, atol=0.01), 5)
    assert position(sim) == pytest.approx(home, abs=0.01)


def test_expert_action_is_published_only_when_asked(nodes, probe):
    """sim/expert_action (what a scripted operator drives with) exists only with publish_expert_action."""
    nodes.start('sim_arm', {'control_rate_hz': 20.0, 'image_size': [32, 32], 'publish_expert_action': True,
                            'wrist_camera': False})
    expert = probe.record(c.SIM_EXPERT_ACTION)
    assert probe.wait_for(lambda: len(expert) > 3, 30), nodes.log('sim_arm')
    action = np.asarray(expert[-1][1].data)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0) and np.linalg.norm(action[:3]) > 0


def test_a_default_reliable_subscriber_gets_the_robot_state(sim, probe):
    """A user's script with rclpy's default QoS (reliable, depth 10) hears robot/ee_pose and robot/gripper_state."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    heard = {c.EE_POSE.name: [], c.GRIPPER_STATE.name: []}
    for topic, kind in ((c.EE_POSE, PoseStamped), (c.GRIPPER_STATE, JointState)):
        probe.node.create_subscription(kind, topic.name, heard[topic.name].append, 10)
    assert probe.wait_for(lambda: all(len(v) > 3 for v in heard.values()), 10), {k: len(v) for k, v in heard.items()}
