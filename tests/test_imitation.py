"""The imitation stage (training/imitation.py): experts -> behaviour cloning -> DAgger, resumable, exportable,
and a valid start for RL finetuning. Debug preset: two tasks, tiny networks, a few seconds per stage."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.bundle import read_manifest
from models.runtime import PolicyRuntime
from training.checkpoint import list_checkpoints
from training.config import FinetuneSettings, preset
from training.cli import main as train_main
from training.export import main as export_main
from training.phrases import held_out_phrases, training_phrases
from training.replay import EpisodeReplay, mixed_sample
from training.rollouts import expert_label

DEBUG = ['--preset', 'debug']


@pytest.fixture(scope='module')
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('imitation') / 'il'
    assert train_main(['imitate', '--run-dir', str(root), *DEBUG]) == 0
    return root


def test_a_run_collects_clones_and_evaluates_every_round(run: Path) -> None:
    info = json.loads((run / 'run.json').read_text())
    assert info['mode'] == 'imitate' and info['text_encoder']['kind'] == 'random'
    evals = json.loads((run / 'evals.json').read_text())
    assert [e['round'] for e in evals] == [0, 1]
    assert [e['step'] for e in evals] == [12, 18]                     # updates + dagger_updates (debug preset)
    assert all(0.0 <= e[t] <= 1.0 for e in evals for t in ('push_button', 'pick_up_cup'))
    shards = sorted(p.name for p in (run / 'demos').iterdir())
    assert shards == ['round0_pick_up_cup_0000.npz', 'round0_push_button_0000.npz',
                      'round1_pick_up_cup_0000.npz', 'round1_push_button_0000.npz']
    with np.load(run / 'demos' / 'round0_push_button_0000.npz') as shard:
        assert shard['image'].dtype == np.uint8 and shard['image'].shape[1:] == (32, 32, 3)
        assert len(shard['label']) == len(shard['state']) == len(shard['focus']) > 0
        assert set(np.unique(shard['label'][:, 3])) <= {-1.0, 1.0}    # gripper labels carry a margin
        assert set(np.unique(shard['phrase'])) <= set(range(len(training_phrases('push_button', 2))))
    assert (run / 'learning_curve.png').is_file() and any((run / 'videos').glob('eval_round*.mp4'))
    assert any((run / 'tb').iterdir())


def test_gripper_labels_have_a_margin_either_side_of_the_threshold() -> None:
    assert expert_label(np.array([0.5, -1, 0, 0.0], np.float32)).tolist() == [0.5, -1, 0, -1.0]
    assert expert_label(np.array([0, 0, 0, 1.0], np.float32))[3] == 1.0


def test_an_interrupted_run_resumes_without_redoing_finished_work(run: Path, tmp_path: Path) -> None:
    import shutil
    copy = tmp_path / 'il'
    shutil.copytree(run, copy)
    round0 = copy / 'demos' / 'round0_push_button_0000.npz'
    before = round0.stat().st_mtime_ns
    for _, checkpoint in list_checkpoints(copy)[1:]:                   # back to the end of round 0's cloning
        shutil.rmtree(checkpoint)
    for shard in (copy / 'demos').glob('round1_*'):
        shard.unlink()
    evals = json.loads((copy / 'evals.json').read_text())
    (copy / 'evals.json').write_text(json.dumps(evals[:1]))
    assert train_main(['imitate', '--run-dir', str(copy)]) == 0
    assert round0.stat().st_mtime_ns == before                         # kept, not recollected
    assert len(list((copy / 'demos').glob('round1_*'))) == 2
    assert list_checkpoints(copy)[-1][0] == 18


def test_a_finished_run_takes_more_dagger_rounds_and_nothing_else(run: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    import shutil
    copy = tmp_path / 'il'
    shutil.copytree(run, copy)
    assert train_main(['imitate', '--run-dir', str(copy), *DEBUG, '--set', 'imitation.updates=99']) == 1
    assert 'imitation.updates: 12 -> 99' in capsys.readouterr().err
    assert train_main(['imitate', '--run-dir', str(copy), '--set', 'imitation.updates=99']) == 1   # no preset
    assert 'imitation.updates: 12 -> 99' in capsys.readouterr().err
    # --set alone applies to the run's saved config: no need to repeat how the run was made
    assert train_main(['imitate', '--run-dir', str(copy), '--set', 'imitation.dagger_rounds=2']) == 0
    evals = json.loads((copy / 'evals.json').read_text())
    assert [(e['round'], e['step']) for e in evals] == [(0, 12), (1, 18), (2, 24)]


def test_the_bundle_holds_the_policy_only_and_names_its_tasks(run: Path, tmp_path: Path) -> None:
    out = tmp_path / 'bundle'
    assert export_main([str(run), '--out', str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest.tasks == ('push_button', 'pick_up_cup')
    assert ':imitate-all:step18:' in manifest.model_version
    assert [s.name for s in manifest.policy_outputs] == ['action']     # no auxiliary head in the product
    runtime = PolicyRuntime.load(out)
    action = runtime.act(np.zeros((32, 32, 3), np.uint8), np.array([0.5, 0.0, 0.3, 1.0], np.float32),
                         runtime.embed_instruction('push the button'))
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)


def test_a_wrist_camera_run_records_both_cameras_and_its_bundle_sees_both(tmp_path: Path) -> None:
    root, out = tmp_path / 'il_wrist', tmp_path / 'bundle'
    assert train_main(['imitate', '--run-dir', str(root), *DEBUG, '--set', 'agent.cameras=[front, wrist]',
                       '--set', 'imitation.dagger_rounds=0', '--set', 'imitation.tasks=[pick_up_cup]']) == 0
    with np.load(root / 'demos' / 'round0_pick_up_cup_0000.npz') as shard:
        assert shard['image'].shape == shard['image_wrist'].shape
        assert not np.array_equal(shard['image'], shard['image_wrist'])
    assert export_main([str(root), '--out', str(out)]) == 0
    runtime = PolicyRuntime.load(out)
    assert runtime.manifest.cameras == ('front', 'wrist')
    image = np.zeros((32, 32, 3), np.uint8)
    action = runtime.act(image, np.array([0.5, 0.0, 0.3, 1.0], np.float32), runtime.embed_instruction('grab the cup'),
                         {'wrist': image})
    assert action.shape == (4,)


def test_rl_finetuning_starts_from_the_imitation_policy(run: Path, tmp_path: Path) -> None:
    from training.runs import load_agent
    ft = tmp_path / 'ft'
    assert train_main(['finetune', '--run-dir', str(ft), '--task', 'push_button', '--init', str(run), *DEBUG,
                       '--steps', '60']) == 0
    info = json.loads((ft / 'run.json').read_text())
    assert info['init_run'] == str(run.resolve()) and info['init_step'] == 18
    start, config, *_ = load_agent(ft, step=0)
    imitation, *_ = load_agent(run)
    for a, b in zip(start.policy.state_dict().values(), imitation.policy.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    # RLPD-style by default: a fresh layer-normed critic, BC on demos, the expert's demos in their own buffer,
    # the success reward ending episodes at success
    agent = config.agent
    assert agent.critic_layernorm and agent.bc_weight == 1.0 and agent.std_init == agent.std_final == 0.2
    assert any(isinstance(m, torch.nn.LayerNorm) for m in start.critic.q1)
    demos = EpisodeReplay(ft / 'demo_replay', 10_000, 50, ('front',), config.agent.n_step)
    assert len(demos.episodes) == config.finetune.demo_episodes == 20
    for record in demos.episodes:
        episode = demos.load(record)
        assert episode['success'][-1] and bool(episode['terminated']) and not episode['success'][:-1].any()
    batch = mixed_sample(EpisodeReplay(ft / 'replay', 10_000, 50, ('front',), 2), demos, 8, 0.5,
                         np.random.default_rng(0), 'success')
    assert batch['demo'].sum() == 4 and batch['reward'].dtype == np.float32
    assert batch['terminal'][batch['demo']].any() or batch['reward'][batch['demo']].sum() == 0


def test_unknown_tasks_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train_main(['imitate', '--run-dir', str(tmp_path / 'x'), *DEBUG,
                       '--set', 'imitation.tasks=[push_button, wave]']) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown ['wave']" in err and 'push_button' in err


def test_demos_recorded_without_a_camera_the_policy_sees_are_refused_by_name() -> None:
    from training.imitation import EXPERT, Dataset
    shard = {'image': np.zeros((2, 4, 4, 3), np.uint8), 'state': np.zeros((2, 4), np.float32),
             'label': np.zeros((2, 4), np.float32), 'focus': np.full((2, 3), 0.5, np.float32)}
    dataset = Dataset({'pick_up_cup': np.zeros((1, 8), np.float32)}, 0.5, ('front', 'wrist'))
    with pytest.raises(ValueError, match=r"pick_up_cup: a demo shard lacks \['image_wrist'\]"):
        dataset.add('pick_up_cup', EXPERT, shard)


def test_batches_weigh_tasks_equally_and_keep_the_demos_share() -> None:
    from training.imitation import EXPERT, STUDENT, Dataset

    def shard(n: int, marker: float, z: float = 0.1) -> dict[str, np.ndarray]:
        return {'image': np.zeros((n, 4, 4, 3), np.uint8), 'state': np.full((n, 4), marker, np.float32),
                'label': np.zeros((n, 4), np.float32), 'focus': np.tile([0.5, 0.0, z], (n, 1)).astype(np.float32),
                'phrase': np.zeros(n, np.int16), 'episode': np.zeros(n, np.int32), 'success': np.ones(1, bool)}
    data = Dataset({'a': np.zeros((1, 2), np.float32), 'b': np.ones((1, 2), np.float32)}, demo_fraction=0.25)
    data.add('a', EXPERT, shard(10, 1.0))
    data.add('a', EXPERT, shard(5, 9.0, z=-80.0))                     # fell off the table: dropped
    data.add('a', STUDENT, shard(1000, 2.0))
    data.add('b', EXPERT, shard(3, 3.0))
    assert data.steps() == 1013
    batch = data.sample(4000, np.random.default_rng(0))
    marker = batch['state'][:, 0]
    assert set(np.unique(marker)) == {1.0, 2.0, 3.0}
    assert abs((marker == 3.0).mean() - 0.5) < 0.03                    # tasks weigh the same, whatever their size
    assert abs((marker == 1.0).sum() / (marker != 3.0).sum() - 0.25) < 0.03


def test_each_row_gets_one_of_its_tasks_training_phrasings_at_random() -> None:
    from training.imitation import EXPERT, Dataset
    n = 50
    shard = {'image': np.zeros((n, 4, 4, 3), np.uint8), 'state': np.zeros((n, 4), np.float32),
             'label': np.zeros((n, 4), np.float32), 'focus': np.tile([0.5, 0.0, 0.1], (n, 1)).astype(np.float32),
             'phrase': np.zeros(n, np.int16), 'episode': np.zeros(n, np.int32), 'success': np.ones(1, bool)}
    data = Dataset({'a': np.arange(3, dtype=np.float32)[:, None]}, demo_fraction=0.5)
    data.add('a', EXPERT, shard)                                       # recorded with phrasing 0 only
    assert set(data.sample(300, np.random.default_rng(0))['instruction'][:, 0]) == {0.0, 1.0, 2.0}


def test_held_out_phrasings_are_never_trained_on() -> None:
    from sim.tasks import DOWNSTREAM_TASKS
    for task in DOWNSTREAM_TASKS:
        trained, held_out = training_phrases(task, 2), held_out_phrases(task, 2)
        assert len(trained) >= 5 and len(held_out) >= 3
        assert not {p.lower() for p in trained} & {p.lower() for p in held_out}, task


def test_failed_expert_episodes_are_left_out_of_the_demos() -> None:
    from training.imitation import EXPERT, Dataset
    n = 6
    shard = {'image': np.zeros((n, 4, 4, 3), np.uint8), 'state': np.zeros((n, 4), np.float32),
             'label': np.zeros((n, 4), np.float32), 'focus': np.tile([0.5, 0.0, 0.1], (n, 1)).astype(np.float32),
             'phrase': np.zeros(n, np.int16), 'episode': np.array([7, 7, 8, 8, 8, 9], np.int32),
             'success': np.array([True, False, True]), 'seeds': np.array([7, 8, 9], np.int32)}
    data = Dataset({'a': np.zeros((1, 2), np.float32)}, demo_fraction=0.5)
    data.add('a', EXPERT, shard)
    assert data.steps() == 3                                           # episode 8 (failed) dropped


def test_fumbled_demos_show_the_expert_recovering_from_a_missed_grasp() -> None:
    from training.rollouts import ShardSpec, run_shard
    spec = ShardSpec('pick_up_cup', tuple(range(6)), 32, 1, 80, 2, np.zeros((1, 8), np.float32),
                     noise_std=0.0, noisy_fraction=0.0, fumble_fraction=1.0)
    shard = run_shard(spec)
    closed_empty_told_to_open = (shard['state'][:, 3] < 0.05) & (shard['label'][:, 3] > 0)
    assert closed_empty_told_to_open.any()                             # a state clean demos never visit
    assert shard['success'].mean() >= 0.5                              # and the expert comes back from it
    assert shard['seeds'].tolist() == list(range(6))


def test_only_pick_demos_fumble() -> None:
    from training.rollouts import ShardSpec, run_shard
    spec = ShardSpec('turn_tap', (0, 1), 32, 1, 40, 2, np.zeros((1, 8), np.float32))
    clean, fumbled = run_shard(spec), run_shard(replace(spec, fumble_fraction=1.0))
    assert np.array_equal(clean['state'], fumbled['state'])


def test_the_offset_target_adds_three_auxiliary_outputs() -> None:
    """The focus point's offset from the TCP, beside the point itself: what a grasp must get right."""
    from training.agent import DrQAgent
    from training.config import PRESETS, replace
    from training.imitation import BehaviourCloner
    config = PRESETS['debug']()
    settings = replace(config.imitation, aux_offset_weight=1.0)
    learner = BehaviourCloner(DrQAgent(replace(config.agent, embedding_dim=8), seed=0), settings)
    size, n = config.env.image_size, 4
    rng = np.random.default_rng(0)
    batch = {'image': rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
             'state': np.tile([0.4, 0.0, 0.2, 1.0], (n, 1)).astype(np.float32),
             'label': np.zeros((n, 4), np.float32), 'focus': np.tile([0.5, 0.0, 0.1], (n, 1)).astype(np.float32),
             'instruction': np.zeros((n, 8), np.float32)}
    metrics = learner.update(batch)
    assert learner.aux_head.out_features == 6 and np.isfinite(list(metrics.values())).all()
    without = BehaviourCloner(DrQAgent(replace(config.agent, embedding_dim=8), seed=0),
                              replace(settings, aux_offset_weight=0.0))
    assert without.aux_head.out_features == 3


def test_the_learning_rate_decays_along_a_cosine_to_its_final_fraction_and_stays() -> None:
    from training.agent import DrQAgent
    from training.config import PRESETS, replace
    from training.imitation import BehaviourCloner
    config = PRESETS['debug']()
    settings = replace(config.imitation, updates=100, lr=1e-3, lr_final_fraction=0.1)
    learner = BehaviourCloner(DrQAgent(replace(config.agent, embedding_dim=8), seed=0), settings)
    rates = []
    for updates in (0, 50, 100, 150):
        learner.updates = updates
        rates.append(learner.learning_rate())
    assert rates == pytest.approx([1e-3, 0.55e-3, 1e-4, 1e-4])
    constant = BehaviourCloner(DrQAgent(replace(config.agent, embedding_dim=8), seed=0),
                               replace(settings, lr_final_fraction=1.0))
    constant.updates = 60
    assert constant.learning_rate() == pytest.approx(1e-3)


def test_older_runs_resume_after_the_learning_rate_schedule_was_added() -> None:
    """A setting added later stays out of the checkpoint hash at its default, so runs made before it resume."""
    from training.config import PRESETS, replace
    from training.loop import hashed_settings
    config = PRESETS['debug']()
    assert 'lr_final_fraction' not in hashed_settings(config)['imitation']
    decayed = replace(config, imitation=replace(config.imitation, lr_final_fraction=0.5))
    assert hashed_settings(decayed)['imitation']['lr_final_fraction'] == 0.5


def test_successful_episodes_join_the_demo_buffer_when_asked(run: Path, tmp_path: Path) -> None:
    """finetune.success_to_demos (self-imitation): an episode of the run that succeeds is cloned like a demo."""
    ft = tmp_path / 'ft'
    assert train_main(['finetune', '--run-dir', str(ft), '--task', 'push_button', '--init', str(run), *DEBUG,
                       '--steps', '40', '--set', 'prefill_expert_episodes=1',       # the expert plays episode 0
                       '--set', 'finetune.success_to_demos=true', '--set', 'finetune.demo_episodes=3']) == 0
    demos = EpisodeReplay(ft / 'demo_replay', 10_000, 50, ('front',), 2)
    given = [e for e in demos.episodes if e.end_step == 0]
    own = [e for e in demos.episodes if e.end_step > 0]
    assert len(given) == 3 and own, 'the expert-played episode of the run did not join the demos'
    assert all(demos.load(e)['success'].any() for e in own)
    replay = EpisodeReplay(ft / 'replay', 10_000, 50, ('front',), 2)
    assert {e.end_step for e in own} <= {e.end_step for e in replay.episodes}


def test_self_imitation_can_keep_only_quick_successes() -> None:
    """finetune.success_to_demos_max_steps: a success that took longer (it hovered first) is not cloned."""
    quick = FinetuneSettings(success_to_demos=True, success_to_demos_max_steps=20)
    assert quick.promotes(True, 20) and not quick.promotes(True, 21) and not quick.promotes(False, 5)
    assert FinetuneSettings(success_to_demos=True).promotes(True, 150)                     # 0: any success
    assert not FinetuneSettings(success_to_demos=False, success_to_demos_max_steps=20).promotes(True, 5)
    with pytest.raises(ValueError, match='success_to_demos_max_steps must be >= 0'):
        replace(preset('debug'), finetune=FinetuneSettings(success_to_demos_max_steps=-1))
