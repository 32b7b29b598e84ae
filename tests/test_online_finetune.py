"""Online finetuning's learning signals through the real link (debug agent, a robot's real link client):
the steps the operator drove reach the learner's demo buffer, the robot's success label becomes the reward
(and ends the episode for the critic), the status counts interventions per episode, the batches mix demos
and robot data, and the learner's trained bundle reaches the robot (which swaps it in between episodes)."""
import json
import re
import threading

import numpy as np
import pytest

from lamp_ros.contract import ACTION_DIM, STATE_KEYS
from training.interventions import before_takeover, intervention_segments
from lamp_ros.learner.learner import Learner, LearnerOptions
from lamp_ros.link.refusal import Refused
from lamp_ros.link.schema import check_chunk, check_hello
from models.bundle import read_manifest
from tests.robot_traffic import episode_chunks, hello_meta, robot, wait
from training.replay import mixed_sample


def deliver(client, chunks) -> None:
    for meta, arrays in chunks:
        client.send(meta, arrays)
    assert wait(lambda: client.backlog == 0, 10), f'backlog {client.backlog}: {client.faults.active()}'


def test_interventions_become_demos_success_becomes_reward_and_the_bundle_reaches_the_robot(tmp_path):
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                                     reward_source='success', bundle_every=5, checkpoint_every=5))
    bundles = []
    client = robot(tmp_path, learner.server.endpoint, reward_source='success',
                   on_bundle=lambda version, path: bundles.append(version))
    try:
        # episode 1: the operator drives steps 2..8 and the episode succeeds; episode 2: no help, no success
        deliver(client, episode_chunks(steps=12, operator=range(2, 9), rewards_from_success=True, seed=1))
        deliver(client, episode_chunks(steps=12, success=False, rewards_from_success=True, seed=2))
        assert wait(lambda: len(learner.replay.episodes) == 2, 10)
        helped, alone = (learner.replay.load(e) for e in learner.replay.episodes)
        assert helped['reward'].tolist() == [0.0] * 11 + [1.0] and bool(helped['terminated'])
        assert alone['reward'].sum() == 0 and not bool(alone['terminated'])
        assert learner.store.rewards_missing == 0, 'the success source needs no reward messages'

        assert len(learner.demos.episodes) == 1
        demo = learner.demos.load(learner.demos.episodes[0])
        assert len(demo['action']) == 7 and demo['intervention'].all()
        assert np.array_equal(demo['action'], helped['action'][2:9])
        assert np.array_equal(demo['image_front'], helped['image_front'][2:10])     # + the frame after the last
        status = learner.status()
        assert status['interventions_last_episode'] == 0 and status['interventions_per_episode'] == 3.5
        assert status['demo_transitions'] == 7

        batch = mixed_sample(learner.replay, learner.demos, 8, 0.5, np.random.default_rng(0))
        assert batch['demo'].sum() == 4 and batch['image_front'].shape[0] == 8

        learner.run(threading.Event(), max_updates=10)
        assert learner.counters.updates == 10 and 'train/critic_loss' in learner.status()
        agent = learner.agent.config                     # RLPD's critic, TD3+BC's term (finetune.* defaults)
        assert agent.critic_layernorm and agent.bc_weight > 0 and agent.critic_warmup_updates > 0
        assert wait(lambda: learner.version_name in bundles, 10), (bundles, learner.version_name)
        assert read_manifest(tmp_path / 'run' / 'bundles' / 'v0003').model_version == learner.version_name
    finally:
        client.close()
        learner.close()


def test_intervention_segments_keep_whole_transitions_and_end_terminal_only_at_the_end():
    steps = 10
    episode = {'image_front': np.arange(steps + 1)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8),
               'state': np.zeros((steps + 1, 4), np.float32), 'action': np.arange(steps, dtype=np.float32)[:, None],
               'reward': np.zeros(steps, np.float32), 'success': np.zeros(steps, bool),
               'intervention': np.isin(np.arange(steps), [1, 2, 5, 6, 7, 8, 9]), 'terminated': np.array(True),
               'instruction': np.array('push button')}
    segments = intervention_segments(episode, n_step=2)
    assert len(segments) == 1, 'a stretch of 2 steps is too short for a 2-step window'
    (segment,) = segments
    assert segment['action'][:, 0].tolist() == [5, 6, 7, 8, 9]
    assert segment['image_front'][:, 0, 0, 0].tolist() == [5, 6, 7, 8, 9, 10]
    assert bool(segment['terminated']) and str(segment['instruction']) == 'push button'
    episode['intervention'][9] = False
    assert not bool(intervention_segments(episode, n_step=2)[0]['terminated'])
    own = before_takeover(episode)                   # finetune.takeover_is_failure: the policy's part, failed
    assert own['action'][:, 0].tolist() == [0] and own['image_front'][:, 0, 0, 0].tolist() == [0, 1]
    assert bool(own['terminated']) and not own['success'].any()
    episode['intervention'][:] = False
    assert len(before_takeover(episode)['action']) == steps and bool(before_takeover(episode)['terminated'])


def test_the_scripted_operator_helps_stalled_episodes_in_the_first_episodes_only():
    from lamp_ros.teleop.stall import StallRule
    rule = StallRule(help_episodes=2, stall_steps=5)
    running = lambda episode, success=False: {'state': 'running', 'episode': episode, 'success': success}  # noqa: E731
    assert not rule.update(running(1), 4) and rule.update(running(1), 5) and rule.update(running(1), 9)
    assert not rule.update({'state': 'stopped', 'episode': 1}, 9)
    assert not rule.update(running(2, success=True), 8), 'a policy that succeeds is left alone'
    assert not rule.update(running(3), 30), 'past help_episodes the policy is on its own'
    assert (rule.episodes_seen, rule.episodes_helped) == (3, 1)


def test_the_scripted_operator_node_drives_with_the_expert_action_once_an_episode_stalls(probe, tmp_path):
    import json
    import subprocess
    import sys

    from std_msgs.msg import String

    from lamp_ros import contract as c
    from lamp_ros.ros.convert import action_msg, applied_action_msg
    operator = subprocess.Popen([sys.executable, '-m', 'lamp_ros.nodes.scripted_operator', '--ros-args',
                                 '-p', 'stall_steps:=5', '-p', 'help_episodes:=1'],
                                stdout=open(tmp_path / 'operator.log', 'w'), stderr=subprocess.STDOUT)
    try:
        teleop = probe.record(c.TELEOP_ACTION)
        probe.publish(c.EPISODE_STATUS, String(data=json.dumps({'episode': 1, 'state': 'running', 'success': False})))
        expert = lambda: probe.publish(c.SIM_EXPERT_ACTION, action_msg(np.array([0.5, -0.25, 0.0, 0.0])))  # noqa: E731
        assert not probe.wait_for(lambda: teleop, 2.0, expert), 'no help before the episode stalls'
        for garbage in ('not json', '[1, 2]'):                 # bad input: a line each, no crash, status kept
            probe.publish(c.EPISODE_STATUS, String(data=garbage))
        def policy_steps_and_expert() -> None:        # the policy's control steps, as the safety node reports them
            probe.publish(c.APPLIED_ACTION, applied_action_msg(np.zeros(3), 1.0, False,
                                                               probe.node.get_clock().now().to_msg()))
            expert()
        assert probe.wait_for(lambda: len(teleop) >= 3, 10, policy_steps_and_expert), \
            (tmp_path / 'operator.log').read_text()
        assert np.allclose(teleop[-1][1].data, [0.5, -0.25, 0.0, 0.0])
    finally:
        operator.terminate()
        operator.wait(10)
    log = (tmp_path / 'operator.log').read_text()
    assert 'episode/status ignored' in log and 'Traceback' not in log, log


def test_a_wrist_camera_agent_learns_from_robots_that_send_the_wrist_image(tmp_path, caplog):
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                                     reward_source='success', cameras=('front', 'wrist')))
    wrist = robot(tmp_path, learner.server.endpoint, reward_source='success', cameras=('front', 'wrist'))
    front_only = robot(tmp_path, learner.server.endpoint, robot_id='front_only', reward_source='success')
    try:
        deliver(wrist, episode_chunks(steps=12, operator=range(2, 9), rewards_from_success=True, wrist=True))
        assert wait(lambda: len(learner.replay.episodes) == 1, 10)
        episode = learner.replay.load(learner.replay.episodes[0])
        size = learner.config.agent.image_size
        assert episode['image_wrist'].shape == (13, size, size, 3) == episode['image_front'].shape
        demo = learner.demos.load(learner.demos.episodes[0])
        assert np.array_equal(demo['image_wrist'], episode['image_wrist'][2:10])
        learner.run(threading.Event(), max_updates=3)
        assert learner.counters.updates == 3

        assert wait(lambda: 'bad_hello' in learner.status()['refused'], 10)
        assert not front_only.connected and any('bad_hello' in f for f in front_only.faults.active())
        assert "the robot sends cameras ['front'], this agent sees ['front', 'wrist']" in caplog.text
    finally:
        wrist.close()
        front_only.close()
        learner.close()


def test_chunks_must_carry_the_cameras_their_hello_announced():
    wrist_hello = check_hello({**hello_meta('r'), 'cameras': ['front', 'wrist']}, 'r', STATE_KEYS, ACTION_DIM)
    with_wrist, front_only = episode_chunks('r', wrist=True), episode_chunks('r')
    for meta, arrays in with_wrist:
        check_chunk({**meta, 'chunk_id': 'c', 'robot_id': 'r'}, arrays, wrist_hello, 64)
    for chunks, hello, problem in ((front_only, wrist_hello, "missing ['image_wrist']"),
                                   (with_wrist, check_hello(hello_meta('r'), 'r', STATE_KEYS, ACTION_DIM),
                                    "unexpected ['image_wrist']")):
        meta, arrays = chunks[0]
        with pytest.raises(Refused, match=re.escape(problem)):
            check_chunk({**meta, 'chunk_id': 'c', 'robot_id': 'r'}, arrays, hello, 64)
    for cameras in (['wrist'], ['front', 'front'], ['front', 'thermal'], 'front'):
        with pytest.raises(Refused, match='cameras'):
            check_hello({**hello_meta('r'), 'cameras': cameras}, 'r', STATE_KEYS, ACTION_DIM)


def test_a_success_label_given_after_the_episode_was_stored_becomes_its_reward(tmp_path):
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                                     reward_source='success'))
    client = robot(tmp_path, learner.server.endpoint, reward_source='success')
    try:
        chunks = episode_chunks(steps=12, success=False, rewards_from_success=True)   # the step limit ended it
        deliver(client, chunks)
        assert wait(lambda: len(learner.replay.episodes) == 1, 10)
        key = chunks[0][0]['episode']
        deliver(client, [({'episode': key, 'label_update': {'label': 'success', 'success': True}}, {}),
                         ({'episode': 'robot-gone', 'label_update': {'label': 'success', 'success': True}}, {})])
        labels = tmp_path / 'run' / 'incoming' / 'labels.jsonl'
        assert wait(lambda: labels.is_file() and len(labels.read_text().splitlines()) == 2, 10)
        episode = learner.replay.load(learner.replay.episodes[0])
        assert episode['reward'].tolist() == [0.0] * 11 + [1.0] and bool(episode['terminated'])
        assert episode['success'].tolist() == [False] * 11 + [True]
        assert [json.loads(line)['applied'] for line in labels.read_text().splitlines()] == [True, False]
    finally:
        client.close()
        learner.close()


def test_successes_join_the_demos_when_asked_and_follow_the_operators_late_label(tmp_path):
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                                     reward_source='success', settings=('finetune.success_to_demos=true',)))
    client = robot(tmp_path, learner.server.endpoint, reward_source='success')
    try:
        won = episode_chunks(steps=12, success=True, rewards_from_success=True, seed=1)
        lost = episode_chunks(steps=12, success=False, rewards_from_success=True, seed=2)
        deliver(client, won + lost)
        assert wait(lambda: len(learner.replay.episodes) == 2, 10)
        assert len(learner.demos.episodes) == 1, 'the success is a demonstration, the failure is not'
        relabel = lambda chunks, success: ({'episode': chunks[0][0]['episode'], 'label_update': {  # noqa: E731
            'label': 'success' if success else 'failure', 'success': success}}, {})
        deliver(client, [relabel(lost, True)])
        assert wait(lambda: len(learner.demos.episodes) == 2, 10), 'a late success label promotes the episode'
        deliver(client, [relabel(won, False)])
        assert wait(lambda: len(learner.demos.episodes) == 1, 10), 'a late failure label takes it out again'
        assert all(learner.demos.load(e)['success'].any() for e in learner.demos.episodes)
    finally:
        client.close()
        learner.close()
