"""actor node over real topics, sending to a real LinkServer on loopback (the learner's transport; its store
is in memory here): transitions arrive complete and in order, a learner outage is buffered on disk and
delivered after, a pushed bundle is offered to the policy node."""
import json

import numpy as np
from std_msgs.msg import String
from geometry_msgs.msg import Vector3Stamped

from lamp_ros import contract as c
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from lamp_ros.ros.convert import applied_action_msg, gripper_state_msg, image_msg, pose_msg
from tests.test_link import MemoryStore


class Robot:
    """Plays camera, arm, safety, reward and episode node for the actor."""

    def __init__(self, probe, wrist=False):
        self.probe, self.step, self.wrist = probe, 0, wrist

    def status(self, episode, state, **extra):
        self.probe.publish(c.EPISODE_STATUS, String(data=json.dumps(
            {'episode': episode, 'state': state, 'instruction': 'push button', 'success': False, 'label': '',
             **extra})))

    def sense(self):
        stamp = self.probe.node.get_clock().now().to_msg()
        image = np.full((16, 16, 3), self.step % 256, np.uint8)
        self.probe.publish(c.CAMERA_IMAGE, image_msg(image, stamp, 'camera_front'))
        if self.wrist:                                  # another size, another value: told apart at the learner
            self.probe.publish(c.WRIST_CAMERA_IMAGE, image_msg(np.full((8, 12, 3), 255 - self.step % 256, np.uint8),
                                                               stamp, 'camera_wrist'))
        self.probe.publish(c.EE_POSE, pose_msg(np.array([0.4, 0, 0.3]), np.array([1.0, 0, 0, 0]), stamp, 'base'))
        self.probe.publish(c.GRIPPER_STATE, gripper_state_msg(1.0, stamp))
        return stamp

    def tick(self):
        stamp = self.sense()
        reward = Vector3Stamped()
        reward.header.stamp, reward.vector.x = stamp, float(self.step)
        self.probe.publish(c.REWARD, reward)
        self.probe.spin_for(0.02)                       # the actor has this image before the action comes
        self.probe.publish(c.APPLIED_ACTION, applied_action_msg(np.array([0.1, 0, 0]), 1.0, self.step % 5 == 0,
                                                                stamp))
        self.step += 1


def test_actor_delivers_every_step_through_a_learner_outage(nodes, probe, tmp_path):
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    endpoint = server.endpoint
    nodes.start('actor', {'learner': endpoint, 'chunk_steps': 5, 'outbox_dir': str(tmp_path / 'outbox'),
                          'bundle_dir': str(tmp_path / 'bundles')})
    link = probe.record(c.LEARNER_STATUS)
    offers = probe.record(c.POLICY_BUNDLE)
    robot = Robot(probe)
    learner = lambda: json.loads(link[-1][1].data) if link else {}   # noqa: E731
    try:
        assert probe.wait_for(lambda: learner().get('connected'), 30), nodes.log('actor')
        robot.sense()                           # the actor knows the robot before the first step
        robot.status(1, 'running')
        probe.spin_for(0.5)
        for k in range(12):
            robot.tick()
            probe.spin_for(0.08)
            if k == 3:              # bad statuses (a keep-last topic: some may be superseded): the episode goes on
                for garbage in ('not json', '[1]', '{"episode": "x", "state": "stopped"}', '{"state": "idle"}'):
                    probe.publish(c.EPISODE_STATUS, String(data=garbage))
        assert probe.wait_for(lambda: store.transitions() >= 10, 10), (store.transitions(), nodes.log('actor'))
        server.close()                                              # the learner goes away
        assert probe.wait_for(lambda: not learner().get('connected', True), 10)
        for _ in range(8):
            robot.tick()
            probe.spin_for(0.08)
        robot.status(1, 'stopped', success=True, label='success')
        # no frame after the last step's comes here: the episode goes out after final_frame_wait_s (1 s)
        assert probe.wait_for(lambda: learner().get('steps_sent') == 20 and learner().get('backlog', 0) >= 1, 10)
        assert list((tmp_path / 'outbox').glob('*.chunk')), 'backlog must be on disk'
        server = LinkServer(ServerConfig(endpoint=endpoint), store.store, store.is_stored)   # and comes back
        assert probe.wait_for(lambda: learner().get('backlog', 1) == 0 and learner().get('connected'), 20)
        chunks = store.ordered()
        steps = store.transitions()
        assert steps == learner()['steps_recorded'], 'every recorded step reaches the learner'
        assert steps == 20
        rewards = np.concatenate([a['reward'] for _, a in chunks])
        assert rewards[:-1].tolist() == list(map(float, range(1, 20)))       # r_t = reward of the next frame
        last_meta, last_arrays = chunks[-1]
        assert last_meta['last'] == {'success': True, 'label': 'success', 'steps': 20}
        assert 'final_image' in last_arrays
        assert np.concatenate([a['intervention'] for _, a in chunks]).sum() == 4
        assert {m['instruction'] for m, _ in chunks} == {'push button'}
        assert 'episode/status ignored' in nodes.log('actor') and 'Traceback' not in nodes.log('actor')

        bundle = tmp_path / 'b'
        bundle.mkdir()
        (bundle / 'manifest.json').write_text('{}')
        server.push_bundle(bundle, 'v3')
        assert probe.wait_for(lambda: offers, 10)
        offer = json.loads(offers[-1][1].data)
        assert offer['version'] == 'v3' and (tmp_path / 'bundles' / 'v3' / 'manifest.json').is_file()
    finally:
        server.close()


def test_an_actor_for_a_wrist_camera_policy_sends_the_wrist_image_of_every_step(nodes, probe, tmp_path):
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    nodes.start('actor', {'learner': server.endpoint, 'chunk_steps': 5, 'outbox_dir': str(tmp_path / 'outbox'),
                          'bundle_dir': str(tmp_path / 'bundles'), 'cameras': ['front', 'wrist']})
    link = probe.record(c.LEARNER_STATUS)
    robot = Robot(probe, wrist=True)
    try:
        assert probe.wait_for(lambda: link and json.loads(link[-1][1].data)['connected'], 30), nodes.log('actor')
        robot.sense()
        robot.status(1, 'running')
        probe.spin_for(0.5)
        for _ in range(7):
            robot.tick()
            probe.spin_for(0.08)
        robot.sense()                                   # o_T, of both cameras
        probe.spin_for(0.1)
        robot.status(1, 'stopped', success=True, label='success')
        assert probe.wait_for(lambda: store.transitions() == 7 and store.ordered()[-1][0].get('last'), 10), \
            nodes.log('actor')
        chunks = store.ordered()
        front = np.concatenate([a['image_front'] for _, a in chunks])
        wrist = np.concatenate([a['image_wrist'] for _, a in chunks])
        assert wrist.shape == (7, 8, 12, 3) and front.shape == (7, 16, 16, 3)
        assert (wrist[:, 0, 0, 0].astype(int) + front[:, 0, 0, 0]).tolist() == [255] * 7, 'same moment'
        assert chunks[-1][1]['final_image_wrist'].shape == (1, 8, 12, 3)
    finally:
        server.close()
