"""Episodes: the ROS-free tracker, and the episode node with the simulated arm over real services and topics."""
import json

import pytest
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.core.episode import EpisodeConfig, EpisodeTracker, parse_status
from lamp_ros.ros.convert import applied_action_msg


def test_tracker_steps_success_and_labels():
    t = EpisodeTracker(EpisodeConfig(max_steps=3, success_sources=('sim', 'label')))
    t.start('push button')
    for _ in range(2):
        t.on_step()
    assert t.state == 'running'
    t.on_step(intervention=True)
    assert (t.state, t.stop_reason, t.interventions) == ('stopped', 'max_steps', 1)
    t.start('push button')
    t.on_sim_success(True)                               # before the first step: the previous scene's success
    assert not t.success and t.state == 'running'
    t.on_step()
    t.on_sim_success(True)
    assert t.success and t.success_source == 'sim' and t.stop_reason == 'success'
    t.start('push button')
    t.on_label('failure')
    assert t.label == 'failure' and not t.success and t.state == 'stopped'
    assert t.take_events() == ['start', 'stop', 'start', 'stop', 'start', 'stop']
    t.on_reward(100.0)                                   # 'reward' not a source here
    assert not t.success
    with pytest.raises(ValueError, match='label'):
        t.on_label('meh')
    with pytest.raises(ValueError, match='success sources'):
        EpisodeConfig(success_sources=('vibes',))


def test_a_status_reads_back_and_a_bad_one_is_named():
    t = EpisodeTracker(EpisodeConfig())
    assert parse_status(json.dumps(t.status())) == t.status()
    t.start('push button')
    assert parse_status(json.dumps(t.status()))['state'] == 'running'
    for text, why in (('not json', 'not JSON'), ('[1, 2]', 'not a JSON object'),
                      ('{"episode": 1, "state": "flying"}', "state 'flying' is not one of idle, running, stopped"),
                      ('{"state": "running"}', 'no episode number'),
                      ('{"episode": "x", "state": "running"}', "episode 'x' must be"),
                      ('{"episode": 2, "state": "running", "step": -1, "interventions": true}',
                       'step -1, interventions True must be whole numbers'),
                      ('{"episode": 2, "state": "stopped", "label": 7, "success": "yes"}',
                       "label '7', success 'yes' of the wrong type")):
        with pytest.raises(ValueError, match=why):
            parse_status(text)


def test_reward_threshold_success():
    t = EpisodeTracker(EpisodeConfig(success_sources=('reward',), reward_threshold=0.8))
    t.start('x')
    t.on_reward(0.5)
    assert not t.success
    t.on_reward(0.9)
    assert t.success and t.state == 'stopped'


def test_a_node_that_subscribes_after_a_start_still_hears_it(nodes, probe):
    """Discovery takes a moment: a policy matched just after the start once idled through the whole episode."""
    nodes.start('episode', {'max_steps': 5, 'success_sources': ['label']})
    statuses = probe.record(c.EPISODE_STATUS)
    assert probe.wait_for(lambda: statuses, 20), nodes.log('episode')
    assert probe.call(Trigger, c.EPISODE_START_SERVICE, Trigger.Request()).success
    assert probe.wait_for(lambda: json.loads(statuses[-1][1].data)['state'] == 'running', 5)
    late = probe.record(c.EPISODE_EVENT)                        # subscribed after the start was published
    assert probe.wait_for(lambda: late, 5), 'a late subscriber missed the episode start'
    assert [msg.data for _, msg in late] == ['start']


def test_episode_node_resets_the_sim_and_counts_steps(nodes, probe):
    nodes.start('sim_arm', {'image_size': [32, 32], 'randomize': False})
    nodes.start('episode', {'max_steps': 5, 'success_sources': ['label']})
    events = probe.record(c.EPISODE_EVENT)
    statuses = probe.record(c.EPISODE_STATUS)
    images = probe.record(c.CAMERA_IMAGE)
    probe.publish(c.INSTRUCTION, String(data='push button'))
    assert probe.wait_for(lambda: images, 30), nodes.log('sim_arm')         # the simulator is up
    # no safety or gripper node: a reset would start an episode the driver cannot hear; it says which topics
    for _ in range(20):
        result = probe.call(Trigger, c.EPISODE_RESET_SERVICE, Trigger.Request(), timeout=30)
        if 'robot/reset is not available' not in result.message:
            break
        probe.spin_for(0.5)
    assert not result.success and 'robot/gripper_cmd (publisher)' in result.message, result.message
    assert 'robot/ee_twist_cmd (publisher)' in result.message
    probe.publish(c.EE_TWIST_CMD, TwistStamped())                           # the probe stands in for safety ...
    probe.publish(c.GRIPPER_CMD, Float64(data=1.0))                          # ... and the gripper node
    # the episode node may discover the publishers a little later: it says so and a retry works
    for _ in range(20):
        result = probe.call(Trigger, c.EPISODE_RESET_SERVICE, Trigger.Request(), timeout=30)
        if result.success or 'is not available' not in result.message:
            break
        probe.spin_for(0.5)
    assert result.success and 'arm at home' in result.message, (result.message, nodes.log('episode'))
    assert probe.call(Trigger, c.EPISODE_START_SERVICE, Trigger.Request()).success
    assert probe.wait_for(lambda: events and events[-1][1].data == 'start', 5)
    status = lambda: json.loads(statuses[-1][1].data)  # noqa: E731
    assert status()['state'] == 'running' and status()['instruction'] == 'push button'
    stamp = probe.node.get_clock().now().to_msg()
    for i in range(2):
        probe.publish(c.APPLIED_ACTION, applied_action_msg([0.0, 0.0, 0.0], 1.0, False, stamp))
    assert probe.wait_for(lambda: status()['step'] == 2 and status()['state'] == 'running', 5), \
        'the step counter is live (the console shows it as it goes)'
    for i in range(2, 5):
        probe.publish(c.APPLIED_ACTION, applied_action_msg([0.0, 0.0, 0.0], 1.0, i == 2, stamp))
    assert probe.wait_for(lambda: status()['state'] == 'stopped', 5), status()
    assert status()['stop_reason'] == 'max_steps' and status()['step'] == 5 and status()['interventions'] == 1
    assert events[-1][1].data == 'stop'
    assert probe.call(Trigger, c.EPISODE_START_SERVICE, Trigger.Request()).success
    probe.publish(c.EPISODE_LABEL, String(data='success'))
    assert probe.wait_for(lambda: status()['label'] == 'success', 5)
    assert status()['success'] and status()['success_source'] == 'label' and status()['episode'] == 2
    for _ in range(20):                                  # a flood of bad labels: one line, not twenty
        probe.publish(c.EPISODE_LABEL, String(data='great'))
    probe.spin_for(0.3)
    assert nodes.log('episode').count('episode label ignored') == 1 and nodes.alive('episode')


def test_episode_reset_without_an_arm_driver_says_so(nodes, probe):
    nodes.start('episode', {})
    result = probe.call(Trigger, c.EPISODE_RESET_SERVICE, Trigger.Request(), timeout=20)
    assert not result.success and 'robot/reset is not available' in result.message
