"""Scale-out on Ray: simulated robots as Ray actors on a two-node local cluster (Ray's own cluster utilities)
feed one learner over the robot link; one actor killed mid-episode is restarted by Ray and loses nothing the
learner acknowledged or the robot had on disk; eval-bundle and the imitation stage's demo collection spread over
Ray give a local run's results; a cluster address that does not answer is one line."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from lamp_ros.contract import CONTRACT_VERSION
from lamp_ros.learner.chunk_store import SOURCE_KEY
from lamp_ros.learner.learner import Learner, LearnerOptions
from lamp_ros.scale.cluster import ClusterUnreachable, Fleet, FleetSpec, connect
from sim import SIM_VERSION, evaluation
from tests.robot_traffic import RawPeer, hello_meta, wait
from training.rollouts import ShardSpec

REPO = Path(__file__).resolve().parents[1]


def test_a_cluster_address_that_does_not_answer_is_one_line_and_a_failure():
    start = time.monotonic()
    result = subprocess.run([sys.executable, '-m', 'sim.cli', 'eval-bundle', str(REPO / 'bundles/default'),
                             '--episodes', '1', '--ray-address', '127.0.0.1:1'], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 1 and time.monotonic() - start < 30
    assert result.stderr.strip().splitlines() == [
        'lamp-sim: error: Ray cluster at 127.0.0.1:1 does not answer (Connection refused; tried for up to 15 s)']
    with pytest.raises(ClusterUnreachable, match='expected auto, HOST:PORT or ray://HOST:PORT'):
        connect('no-port-here')


@pytest.fixture(scope='module')
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={'num_cpus': 1})
    cluster.add_node(num_cpus=1)
    connect(cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def outbox_ids(robot_dir: Path) -> set[str]:
    return {p.stem.split('_', 1)[1] for p in (robot_dir / 'outbox').glob('*.chunk')}


def test_sim_robots_on_two_nodes_feed_one_learner_and_a_killed_one_loses_nothing(tmp_path, two_nodes):
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                                     settings=('replay.capacity=100000',)))   # no episode evicted while one restarts
    stop = threading.Event()
    trainer = threading.Thread(target=learner.run, args=(stop,), daemon=True)
    trainer.start()
    fleet = Fleet(FleetSpec(2, learner.server.endpoint, 'push_button', tmp_path / 'robots', learner.cameras,
                            (32, 32), episode_steps=12, reward_source='success', explore_std=0.2))
    try:
        deadline = time.monotonic() + 120
        while {e['robot'] for e in fleet.episodes} != {0, 1} and time.monotonic() < deadline:
            fleet.poll()
        assert {e['robot'] for e in fleet.episodes} == {0, 1}, fleet.episodes
        before = ray.get([a.stats.remote() for a in fleet.actors])
        assert before[0]['node'] != before[1]['node'], 'one actor per node'

        fleet.poll(timeout_s=0)                               # both are in an episode again ...
        os.kill(before[0]['pid'], signal.SIGKILL)             # ... and robot 0 dies in the middle of it
        on_disk = outbox_ids(tmp_path / 'robots' / 'sim-0')   # what it had recorded and not yet had acknowledged
        deadline = time.monotonic() + 120
        while (fleet.episodes_lost == 0 or sum(e['robot'] == 0 for e in fleet.episodes) <= before[0]['episodes']) \
                and time.monotonic() < deadline:
            fleet.poll()                                      # Ray restarts it; it resends and goes on
        assert fleet.episodes_lost >= 1 and sum(e['robot'] == 0 for e in fleet.episodes) > before[0]['episodes'], \
            (fleet.episodes_lost, fleet.episodes, before)
        robots = fleet.stop()
    finally:
        stop.set()
        trainer.join()
    assert robots[0]['pid'] != before[0]['pid'] and all(r['backlog'] == 0 for r in robots), robots
    assert all(learner.store.is_stored(chunk_id) for chunk_id in on_disk), (on_disk, learner.status())
    sources = [str(learner.replay.load(e).get(SOURCE_KEY, '')) for e in learner.replay.episodes]
    sessions = {s.rsplit('-', 1)[0] for s in sources if s.startswith('sim-0-')}
    assert len(sessions) == 2, f'robot 0 before and after its restart: {sources}'
    assert any(s.startswith('sim-1-') for s in sources)
    assert set(learner.status()['refused']) <= {'unreachable'}    # at most: answering the dead robot failed
    assert learner.counters.bundle_version >= 1
    learner.close()


def test_eval_bundle_on_ray_gives_the_local_results(two_nodes):
    manifest = evaluation.check_bundle(REPO / 'bundles/default')
    args = (REPO / 'bundles/default', manifest, ['push_button', 'close_microwave'], 2)
    assert evaluation.evaluate(*args, workers=2, on_ray=True) == evaluation.evaluate(*args, workers=2)


def test_imitation_demo_shards_on_ray_equal_the_local_ones(two_nodes):
    from training.imitation import _shards
    embeddings = np.random.default_rng(0).normal(size=(1, 8)).astype(np.float32)
    specs = [(Path(f'shard{i}'), ShardSpec('push_button', (i,), 32, 2, 20, 2, embeddings, noise_std=0.3,
                                           noisy_fraction=0.5)) for i in range(2)]
    local = dict(_shards(specs, workers=1, on_ray=False))
    on_ray = dict(_shards(specs, workers=1, on_ray=True))
    assert sorted(local) == sorted(on_ray) == [0, 1]
    for i in local:
        assert local[i].keys() == on_ray[i].keys()
        assert all(np.array_equal(local[i][k], on_ray[i][k]) for k in local[i])


def test_a_robot_of_another_contract_or_simulator_version_is_refused_with_the_mismatch_named(tmp_path):
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*'))
    peers = {name: RawPeer(learner.server.endpoint, name.encode()) for name in ('old', 'sim-a', 'sim-b', 'arm')}
    try:
        peers['old'].say('hello', {**hello_meta('old'), 'contract_version': CONTRACT_VERSION + 1})
        peers['sim-a'].say('hello', {**hello_meta('sim-a'), 'sim_version': SIM_VERSION})
        assert wait(lambda: learner.sim_version == SIM_VERSION)
        peers['sim-b'].say('hello', {**hello_meta('sim-b'), 'sim_version': 'lamp-sim-0'})
        peers['arm'].say('hello', hello_meta('arm'))                     # a real arm: no simulator to compare
        answers = {name: peer.replies(timeout=2.0, count=1) for name, peer in peers.items()}
    finally:
        for peer in peers.values():
            peer.close()
        learner.close()
    assert [m.kind for m in answers['sim-a']] == [m.kind for m in answers['arm']] == ['welcome']
    old, other = answers['old'][0].meta, answers['sim-b'][0].meta
    assert old['code'] == 'bad_hello' and f'contract version {CONTRACT_VERSION + 1}, this learner ' \
        f'{CONTRACT_VERSION}' in old['reason']
    assert other['code'] == 'bad_hello' and other['reason'] == (
        f"robot sim-b runs simulator lamp-sim-0, this run's simulated robots ran {SIM_VERSION}: start a new run "
        'for another version')
    assert json.loads((tmp_path / 'run' / 'learner.json').read_text())['sim_version'] == SIM_VERSION


def test_finetune_with_actors_keeps_the_update_to_data_ratio_and_evaluates_its_bundles(tmp_path, two_nodes):
    from lamp_ros.learner.sim_fleet import FleetRequest, run_fleet
    settings = ('eval_every=100', 'eval_episodes=2', 'env.episode_steps=20', 'finetune.demo_episodes=1')
    record = run_fleet(FleetRequest(tmp_path / 'run', 'push_button', actors=2, steps=200, preset='debug',
                                    settings=settings))
    assert record['env_steps'] >= 200 and record['cluster']['nodes'] == 2 and record['episodes_lost'] == 0
    ratio = 0.5                                           # the debug preset updates every 2 env steps
    assert record['updates'] <= ratio * (record['env_steps'] + 40) + 1, record     # + the expert demo's steps
    evals = json.loads((tmp_path / 'run' / 'evals.json').read_text())
    assert [e['step'] >= 100 * (i + 1) for i, e in enumerate(evals)] == [True, True]
    assert all(e['bundle'].startswith('v') and e['episodes'] == 2 for e in evals)
    assert json.loads((tmp_path / 'run' / 'fleet.json').read_text())['env_steps'] == record['env_steps']


def test_pretraining_with_actors_learns_from_the_robots_r_vlm_and_novelty(tmp_path, two_nodes, r3m_checkpoint):
    """LAMP pretraining on Ray: the robots step the pretraining scene (an instruction per episode) and score
    r_VLM with the R3M ONNX export, the numbers lamp-train's torch labeler gives the same frames; the learner
    standardizes them per instruction and adds novelty; the bundles are evaluated on the downstream tasks."""
    from lamp_ros.learner.sim_fleet import FleetRequest, run_fleet
    from models.r3m.reward import R3MReward
    from sim import DOWNSTREAM_TASK_NAMES
    from training.replay import EpisodeReplay
    from training.vlm import VlmRewardLabeler
    settings = ('eval_every=48', 'eval_episodes=1', 'env.episode_steps=12', 'reward.standardize_rewards=true',
                'replay.capacity=100000')
    record = run_fleet(FleetRequest(tmp_path / 'run', 'pretrain', actors=2, steps=48, preset='debug',
                                    settings=settings, reward_checkpoint=r3m_checkpoint))
    info = json.loads((tmp_path / 'run' / 'learner.json').read_text())
    assert (info['mode'], info['reward_source'], info['text_encoder']['kind']) == ('pretrain', 'r3m', 'r3m')
    assert record['env_steps'] >= 48 and record['updates'] > 0 and record['episodes_lost'] == 0

    replay = EpisodeReplay(tmp_path / 'run' / 'replay', 100_000, 8, ('front',), 2)
    labeler = VlmRewardLabeler(R3MReward.load(r3m_checkpoint))
    instructions = set()
    for k, stored in enumerate(replay.episodes):
        episode = replay.load(stored)
        expected = labeler.label(f'ep{k}', episode['image_front'], str(episode['instruction']))
        np.testing.assert_allclose(episode['vlm_reward_raw'], expected, atol=1e-4 * max(1, np.abs(expected).max()))
        assert not np.allclose(episode['reward'], episode['vlm_reward_raw'])       # standardized
        instructions.add(str(episode['instruction']))
    assert len(replay.episodes) >= 4 and len(instructions) >= 2, instructions

    learner = Learner(LearnerOptions(tmp_path / 'run', reward_checkpoint=r3m_checkpoint, bind='tcp://127.0.0.1:*'))
    try:
        assert learner.config.agent.intr_scale > 0 and learner.standardizer.stats     # novelty; restored statistics
    finally:
        learner.close()
    (evaluation_,) = json.loads((tmp_path / 'run' / 'evals.json').read_text())
    assert evaluation_['episodes'] == len(DOWNSTREAM_TASK_NAMES)
