"""The learner without a robot: recorded demonstrations into its replay (once each), updates bounded by the
data it has, a bundle pushed and verified, and a restart that resumes counters and replay."""
import dataclasses
import re
import json
import threading

import numpy as np
import pytest

from lamp_ros.contract import STATE_KEYS
from sim import STATE_KEYS as SIM_STATE_KEYS
from lamp_ros.learner.learner import Learner, LearnerError, LearnerOptions
from models.bundle import read_manifest
from models.episodes import Episode, save_episode


def recorded_episode(steps: int = 12, size: int = 48) -> Episode:
    """What `lamp-ros record` writes: frames and contract states [T], applied actions and flags [T-1]."""
    rng = np.random.default_rng(0)
    state = np.zeros((steps + 1, len(STATE_KEYS)), np.float32)
    state[:, 0], state[:, 3], state[:, 7] = np.linspace(0.4, 0.5, steps + 1), 1.0, 1.0
    intervention = np.zeros(steps, bool)
    intervention[3:7] = True
    return Episode(image_front=rng.integers(0, 255, (steps + 1, size, size, 3), dtype=np.uint8),
                   instruction='push button', success=True, state=state,
                   action=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
                   reward=np.linspace(0, 1, steps + 1).astype(np.float32), intervention=intervention)


def test_demos_enter_the_replay_once_and_training_resumes(tmp_path):
    demos = tmp_path / 'demos'
    demos.mkdir()
    save_episode(demos / 'rec-1.npz', recorded_episode())
    options = LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*', demos_dir=demos,
                             bundle_every=5, checkpoint_every=5)
    learner = Learner(options)
    try:
        assert len(learner.replay.episodes) == 1
        stored = learner.replay.load(learner.replay.episodes[0])
        assert stored['image_front'].shape == (13, 32, 32, 3)             # resized to the debug agent's 32x32
        assert stored['state'].shape == (13, 4) and np.allclose(stored['state'][:, 3], 1.0)   # sim.STATE_KEYS
        assert stored['intervention'].sum() == 4 and stored['success'][-1]
        assert np.allclose(stored['reward'], np.linspace(0, 1, 13)[1:])   # r_t = reward of o_{t+1}
        learner.run(threading.Event(), max_updates=10)                   # 12 transitions allow 12 updates
        assert learner.counters.updates == 10 and learner.counters.bundle_version == 3   # v1 at start, +2
        manifest = read_manifest(tmp_path / 'run' / 'bundles' / 'v0003')
        assert manifest.model_version == 'run-v0003' and manifest.image_size == (32, 32)
        stop = threading.Event()
        threading.Timer(2.0, stop.set).start()
        learner.run(stop, max_updates=10)                                # waits for data after 2 more
        assert learner.counters.updates == 12, 'no more updates than 1 per stored transition'
        learner.checkpoint()
    finally:
        learner.close()
    again = Learner(options)
    try:
        assert len(again.replay.episodes) == 1, 'a demo is imported once per run'
        assert (again.counters.updates, again.counters.bundle_version) == (12, 3)
    finally:
        again.close()


def test_a_simulated_expert_demo_is_a_demonstration_throughout(tmp_path):
    """What `lamp-sim record-demos` writes: no intervention flags, the simulator's state columns named in meta."""
    demos = tmp_path / 'demos'
    demos.mkdir()
    expert = recorded_episode()
    columns = [STATE_KEYS.index(k) for k in SIM_STATE_KEYS]
    save_episode(demos / 'expert-1.npz', dataclasses.replace(
        expert, intervention=None, state=expert.state[:, columns],
        meta=json.dumps({'recorder': 'lamp-sim record-demos', 'state_keys': list(SIM_STATE_KEYS)})))
    save_episode(demos / 'unknown-columns.npz', dataclasses.replace(
        expert, state=expert.state[:, :3], meta=json.dumps({'state_keys': ['a', 'b', 'c']})))
    learner = Learner(LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*', demos_dir=demos))
    try:
        assert len(learner.replay.episodes) == 1 and len(learner.demos.episodes) == 1
        assert learner.demos.transitions == 12, 'every step of it is in the demo buffer'
        stored = learner.replay.load(learner.replay.episodes[0])
        assert np.allclose(stored['state'], expert.state[:, columns]), 'columns mapped by name'
    finally:
        learner.close()


def test_a_new_run_takes_settings_and_a_resumed_one_keeps_its_own(tmp_path):
    options = LearnerOptions(tmp_path / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                             settings=('finetune.bc_decay_steps=123',))
    learner = Learner(options)
    try:
        assert learner.config.finetune.bc_decay_steps == 123 and learner.agent.config.bc_decay_updates == 123
    finally:
        learner.close()
    Learner(options).close()                                    # the same settings: resumed
    for settings, words in ((('finetune.bc_decay_steps=7',), 'made with other settings (finetune.bc_decay_steps'),
                            (('finetune.no_such_key=1',), "no setting 'finetune.no_such_key'")):
        with pytest.raises(LearnerError, match=re.escape(words)):
            Learner(dataclasses.replace(options, settings=settings))
    with pytest.raises(LearnerError, match='finetune.privileged_critic is for sim-only training'):
        Learner(dataclasses.replace(options, run_dir=tmp_path / 'privileged',
                                    settings=('finetune.privileged_critic=true',)))
