"""Recording: stamp alignment of one episode's messages, the episode file's intervention and meta fields,
MCAP bags read back by an independent decoder, and `lamp-ros record` against the simulated arm with the
policy and a keyboard operator taking over (intervention flags in the recorded data), as episode files and as a
LeRobotDataset that lerobot's own class reads."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from rosbags.rosbag2 import Reader
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.core.recording import EpisodeRecording
from lamp_ros.ros.convert import action_msg, applied_action_msg, image_msg
from lamp_ros.ros.mcap_bag import BagMessage, message_definition, write_bag
from models.episodes import Episode, EpisodeError, iter_episodes, load_episode, save_episode
from models.r3m.finetune import FinetuneConfig, videos_from_episodes
from tests.test_teleop import hold_key, spawn_keyboard_teleop, stop_terminal


def recording_with_five_frames() -> EpisodeRecording:
    rec = EpisodeRecording(3, 'push button', 0.0)
    for t in range(5):
        assert rec.add_frame(10.0 + 0.1 * t, np.full((8, 8, 3), t, np.uint8)) == ''
        rec.add_pose(10.0 + 0.1 * t + 0.002, np.array([0.4 + 0.01 * t, 0.0, 0.2]), np.array([1.0, 0, 0, 0]))
    rec.add_gripper(10.0, 0.2)                                   # closed at the start
    rec.add_action(9.9, np.array([9, 9, 9, 1.0]), False)         # before the first frame: left out
    rec.add_action(10.005, np.array([0.1, 0, 0, -1.0]), False)   # policy, on frame 0
    rec.add_action(10.150, np.array([0.7, 0, 0, 1.0]), True)     # operator, on frame 1 (arrived out of order) ...
    rec.add_action(10.105, np.array([0.5, 0, 0, -1.0]), True)    # ... and before it on frame 1 too: both are steps
    rec.add_action(10.305, np.array([0.2, 0, 0, 1.0]), False)    # no action on frame 2 (the arm was held)
    rec.add_action(10.405, np.array([0.3, 0, 0, 1.0]), False)    # on frame 4, the newest: the last frame repeats
    rec.add_reward(10.1, 0.5)
    rec.add_reward(10.3, 0.9)
    return rec


def test_one_row_per_applied_action_each_with_the_frame_the_policy_saw():
    rec = recording_with_five_frames()
    steps = rec.aligned()
    assert np.allclose(steps.action, [[0.1, 0, 0, -1], [0.5, 0, 0, -1], [0.7, 0, 0, 1], [0.2, 0, 0, 1],
                                      [0.3, 0, 0, 1]])
    assert steps.intervention.tolist() == [False, True, True, False, False] and steps.before_first_frame == 1
    assert steps.frame_index.tolist() == [0, 1, 1, 3, 4, 4], 'T+1 frames for T steps: a slow camera repeats one'
    state = rec.states()
    assert state.shape == (5, len(c.STATE_KEYS)) and state[:, 0] == pytest.approx([0.4, 0.41, 0.42, 0.43, 0.44])
    assert np.all(state[:, 7] == pytest.approx(0.2))
    reward = rec.reward_per_frame()
    assert np.isnan(reward[[0, 2, 4]]).all() and reward[[1, 3]] == pytest.approx([0.5, 0.9])
    assert 'dropped' in rec.add_frame(10.35, np.zeros((8, 8, 3), np.uint8))     # stamped before the last frame
    assert 'dropped' in rec.add_frame(11.0, np.zeros((4, 4, 3), np.uint8))      # another size
    no_actions = EpisodeRecording(1, 'x', 0.0)
    for t in range(3):
        no_actions.add_frame(float(t), np.zeros((2, 2, 3), np.uint8))
    steps = no_actions.aligned()
    assert steps.action.shape == (0, 4) and steps.frame_index.tolist() == [2]
    assert no_actions.reward_per_frame() is None and no_actions.states() is None


def test_a_camera_faster_than_the_control_loop_gives_as_many_rows_as_steps():
    """30 Hz camera, 10 Hz control: the episode node's step and intervention counts, not three times as many."""
    rec = EpisodeRecording(1, 'x', 0.0)
    for k in range(31):
        rec.add_frame(k / 30, np.zeros((2, 2, 3), np.uint8))
    for k in range(10):
        rec.add_action(k / 10 + 0.01, np.array([0.1, 0, 0, 1.0]), 3 <= k < 6)
    steps = rec.aligned()
    assert len(steps.action) == 10 and steps.intervention.sum() == 3
    assert steps.frame_index.tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]


def test_episode_file_keeps_intervention_flags_and_meta(tmp_path):
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    action = np.zeros((2, 4), np.float32)
    meta = json.dumps({'label': 'success', 'episode': 3})
    path = save_episode(tmp_path / 'rec-1.npz', Episode(frames, 'push button', True, action=action,
                                                        intervention=np.array([True, False]), meta=meta))
    loaded = load_episode(path)
    assert loaded.intervention.tolist() == [True, False] and json.loads(loaded.meta)['label'] == 'success'
    with pytest.raises(EpisodeError, match='action is missing'):
        Episode(frames, 'x', True, intervention=np.array([True, False]))
    with pytest.raises(EpisodeError, match='intervention has 3 flags'):
        Episode(frames, 'x', True, action=action, intervention=np.array([True, False, True]))
    with pytest.raises(EpisodeError, match='meta is not JSON'):
        Episode(frames, 'x', True, meta='{oops')


def test_mcap_bag_reads_back_with_an_independent_ros2_decoder(tmp_path):
    stamp = JointState().header.stamp
    stamp.sec, stamp.nanosec = 12, 500
    image = image_msg(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3), stamp, 'camera_front')
    applied = applied_action_msg(np.array([0.1, -0.2, 0.3]), 1.0, True, stamp)
    messages = [BagMessage('/camera/image_raw', type(image), serialize_message(image), 1_000, 12_000_000_500),
                BagMessage('/control/applied_action', JointState, serialize_message(applied), 2_000, 12_000_000_500),
                BagMessage('/teleop/action', Float32MultiArray, serialize_message(action_msg([1, 0, 0, 1])), 3_000, 3_000),
                BagMessage('/instruction', String, serialize_message(String(data='push button')), 4_000, 4_000)]
    write_bag(tmp_path / 'ep', messages)
    assert sorted(p.name for p in (tmp_path / 'ep').iterdir()) == ['ep_0.mcap', 'metadata.yaml']
    with Reader(tmp_path / 'ep') as bag:                  # rosbags: an independent reader of rosbag2 directories
        assert bag.message_count == 4 and bag.duration == 3_000 + 1 and bag.start_time == 1_000
        assert {c.topic: (c.msgtype, c.msgcount) for c in bag.connections}['/instruction'] == ('std_msgs/msg/String', 1)
        assert [(c.topic, t) for c, t, _ in bag.messages()][0] == ('/camera/image_raw', 1_000)
    with open(tmp_path / 'ep' / 'ep_0.mcap', 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        decoded = [(channel.topic, schema.name, msg) for schema, channel, _, msg in reader.iter_decoded_messages()]
    assert [(t, s) for t, s, _ in decoded] == [('/camera/image_raw', 'sensor_msgs/msg/Image'),
                                              ('/control/applied_action', 'sensor_msgs/msg/JointState'),
                                              ('/teleop/action', 'std_msgs/msg/Float32MultiArray'),
                                              ('/instruction', 'std_msgs/msg/String')]
    img = decoded[0][2]
    assert (img.height, img.width, img.encoding, img.header.stamp.sec) == (2, 3, 'rgb8', 12)
    assert bytes(img.data) == bytes(range(18))
    assert list(decoded[1][2].name) == ['dx', 'dy', 'dz', 'gripper', 'intervention']
    assert list(decoded[1][2].position) == pytest.approx([0.1, -0.2, 0.3, 1.0, 1.0])
    assert list(decoded[2][2].data) == [1.0, 0.0, 0.0, 1.0] and decoded[3][2].data == 'push button'
    assert message_definition(String) == 'string data\n'


def wait_for_file(probe, directory, pattern, count, timeout):
    return probe.wait_for(lambda: len(list(directory.glob(pattern))) >= count, timeout)


def test_record_saves_policy_and_operator_steps_with_intervention_flags(nodes, probe, make_bundle, tmp_path):
    out = tmp_path / 'episodes'
    nodes.start('sim_arm', {'image_size': [32, 32], 'randomize': False})
    nodes.start('safety', {'startup_hold_s': 0.2})
    nodes.start('episode', {'max_steps': 400, 'success_sources': ['label']})
    nodes.start('policy', {'bundle_path': str(make_bundle(32))})
    statuses, applied = probe.record(c.EPISODE_STATUS), probe.record(c.APPLIED_ACTION)
    probe.publish(c.INSTRUCTION, String(data='push the button'))
    recorder_log = tmp_path / 'recorder.log'
    recorder = subprocess.Popen([sys.executable, '-m', 'lamp_ros.record', '--out', str(out), '--mcap'],
                                stdout=open(recorder_log, 'w'), stderr=subprocess.STDOUT)
    dataset, dataset_log = tmp_path / 'lerobot', tmp_path / 'recorder_lerobot.log'     # the same episode, as LeRobot's
    dataset_recorder = subprocess.Popen([sys.executable, '-m', 'lamp_ros.record', '--out', str(dataset), '--format',
                                         'lerobot'], stdout=open(dataset_log, 'w'), stderr=subprocess.STDOUT)
    terminal = spawn_keyboard_teleop(tmp_path, speed=0.5)
    status = lambda: json.loads(statuses[-1][1].data)  # noqa: E731
    try:
        policy_steps = lambda: [m for _, m in applied if m.position[4] < 0.5]  # noqa: E731
        assert probe.wait_for(lambda: statuses and len(policy_steps()) > 5 and all(
            'episode node found' in log.read_text() for log in (recorder_log, dataset_log)), 60), \
            nodes.log('policy') + recorder_log.read_text() + dataset_log.read_text()
        probe.spin_for(1.0)                                   # the recorder's other subscriptions are matched
        assert probe.call(Trigger, c.EPISODE_START_SERVICE, Trigger.Request()).success
        assert probe.wait_for(lambda: status()['state'] == 'running', 5)
        probe.spin_for(1.0)                                   # the policy acts ...
        hold_key(terminal, 'w', 1.2, probe)                   # ... the operator takes over ...
        probe.spin_for(1.5)                                   # ... lets go: the policy again after the hold-off
        probe.publish(c.EPISODE_LABEL, String(data='success'))
        assert probe.wait_for(lambda: status()['state'] == 'stopped' and status()['success'], 5), status()
        assert status()['interventions'] > 0
        assert wait_for_file(probe, out, '*.npz', 1, 20), recorder_log.read_text()
        assert wait_for_file(probe, out, '*/metadata.yaml', 1, 10), recorder_log.read_text()
        saved = sorted(out.glob('*.npz'))[0]
        episode = load_episode(saved)
        meta = json.loads(episode.meta)
        assert episode.success and episode.instruction == 'push the button' and meta['label'] == 'success'
        t = episode.length
        assert t >= 25, f'only {t} frames'
        assert episode.action.shape == (t - 1, 4) and episode.state.shape == (t, len(c.STATE_KEYS))
        flags = episode.intervention
        assert flags.any() and not flags.all(), flags.astype(int)
        assert flags[0] == 0 and flags[-1] == 0               # policy, operator, policy again
        assert np.median(episode.action[flags, 0]) == pytest.approx(0.5, abs=0.01)   # the operator's +x ...
        assert episode.state[-1, 0] > episode.state[0, 0] + 0.03        # ... moved the arm
        assert meta['interventions'] == int(flags.sum()) and meta['state_keys'] == list(c.STATE_KEYS)
        print('recorder steps/interventions', meta['steps'], meta['interventions'], 'episode node',
              status()['step'], status()['interventions'])
        # the recorder learns of the episode's start and stop over DDS: a step more or less at either end
        assert abs(meta['steps'] - status()['step']) <= 2, 'the recorder counts the steps the episode node counts'
        assert meta['interventions'] == status()['interventions']
        videos, left_out = videos_from_episodes(iter_episodes(out), FinetuneConfig())   # what finetune-reward reads
        assert len(videos) == 1 and left_out == 0 and videos[0].instruction == 'push the button'

        with Reader(out / meta['mcap']) as bag:                # a rosbag2 directory, as ros2 bag info reads it
            assert bag.message_count > 0 and '/control/applied_action' in bag.topics
        with open(out / meta['mcap'] / f"{meta['mcap']}_0.mcap", 'rb') as f:    # the same episode's messages
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            topics = {}
            for _, channel, _, msg in reader.iter_decoded_messages(topics=['/control/applied_action',
                                                                             '/camera/image_raw']):
                topics.setdefault(channel.topic, []).append(msg)
        bag_interventions = sum(m.position[4] > 0.5 for m in topics['/control/applied_action'])
        assert bag_interventions >= flags.sum() and len(topics['/camera/image_raw']) >= t

        assert probe.wait_for(lambda: (dataset / 'meta/info.json').is_file(), 20), dataset_log.read_text()
        rows = LeRobotDataset('lamp_ros/recorded', root=dataset)           # lerobot's own class reads the episode
        assert rows.meta.episodes[0]['success']
        # the second recorder is another subscriber: at the episode's start and stop it may see a step more or less
        actions = np.stack([rows[i]['action'].numpy() for i in range(len(rows))])
        row_flags = np.array([bool(rows[i]['complementary_info.is_intervention']) for i in range(len(rows))])
        shift = aligned_shift(actions, episode.action)
        k = min(len(actions), len(episode.action))
        longer_flags, shorter_flags = (row_flags, flags) if len(actions) >= len(episode.action) else (flags, row_flags)
        assert (longer_flags[shift:shift + k] == shorter_flags).all()
        assert rows[0]['task'] == 'push the button'

        # a label given after the episode stopped rewrites its file (and its dataset rows)
        probe.publish(c.EPISODE_LABEL, String(data='failure'))
        assert probe.wait_for(lambda: status()['label'] == 'failure', 5)
        assert probe.wait_for(lambda: json.loads(load_episode(saved).meta)['label'] == 'failure', 10), \
            recorder_log.read_text()
        assert not load_episode(saved).success
        relabelled = lambda: not LeRobotDataset('lamp_ros/recorded', root=dataset).meta.episodes[0]['success']  # noqa: E731
        assert probe.wait_for(relabelled, 10), dataset_log.read_text()
    finally:
        assert stop_terminal(terminal) == 0
        for process, log in ((recorder, recorder_log), (dataset_recorder, dataset_log)):
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=20) == 0, log.read_text()


def aligned_shift(a: np.ndarray, b: np.ndarray) -> int:
    """Two recordings of one episode's actions differ by at most a step at either end: the offset at which the
    shorter one lies in the longer one (asserted to exist)."""
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    assert len(longer) - len(shorter) <= 2, (len(a), len(b))
    shifts = [s for s in range(len(longer) - len(shorter) + 1)
              if np.allclose(longer[s:s + len(shorter)], shorter, atol=1e-6)]
    assert shifts, 'the two recordings hold different actions'
    return shifts[0]
