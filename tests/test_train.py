"""Training in simulation (training, lamp-train): configs, replay on disk, checkpoints and resume (kill -9
included), the pretrain -> finetune -> export -> onnxruntime chain, the CLIs.

Real MuJoCo scenes and real networks at the debug preset's tiny sizes; the R3M reward is a tiny random
checkpoint in the official layout (no pretrained weights exist on a test machine)."""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from training.agent import AgentConfig, DrQAgent
from training.export import main as export_main
from models.r3m.reward import R3MReward
from models.runtime import PolicyRuntime
from sim.privileged import OFFSET_CLIP, OFFSET_UNIT_M, PRIVILEGED_DIM
from sim.robot import ArmConfig
from training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from training.cli import main as train_main
from training.config import (LEGACY_VALUES, PRESETS, FinetuneSettings, PretrainRewardSettings, differences, dump_yaml,
                              load_yaml, override, preset, replace, to_dict)
from training.loop import run_hash
from training.replay import EpisodeReplay, ReplayWarning, episode_name, mixed_sample
from training.runs import load_agent, resolve_pretrain, tuning_candidates
from training.vlm import RewardStandardizer, VlmRewardLabeler
from tests.test_agent import TINY, random_batch

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures('one_torch_thread')


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-m', 'training.cli', *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


# --- config --------------------------------------------------------------------------------------------------

def test_presets_round_trip_through_yaml() -> None:
    for name in PRESETS:
        config = preset(name)
        assert load_yaml(dump_yaml(config)) == config
    assert preset('cpu').agent.image_size == 64 and preset('paper').agent.cameras == ('front', 'wrist')
    changed = override(preset('debug'), ['agent.lr=3e-4', 'env.randomize=false', 'reward.alpha=0.5'])
    assert differences(preset('debug'), changed) == ['agent.lr: 0.0001 -> 0.0003', 'env.randomize: True -> False',
                                                     'reward.alpha: 0.1 -> 0.5']
    with pytest.raises(ValueError, match="no setting 'agent.lrr'"):
        override(preset('debug'), ['agent.lrr=1'])
    with pytest.raises(ValueError, match=r'config.yaml.steps: expected int'):
        load_yaml(dump_yaml(preset('debug')).replace('steps: 240', 'steps: many'))
    with pytest.raises(ValueError, match='unknown keys'):
        load_yaml(dump_yaml(preset('debug')) + 'extra: 1\n')
    with pytest.raises(ValueError, match=r'reward.alpha 1.5 must be in \[0, 1\]'):
        override(preset('debug'), ['reward.alpha=1.5'])


def test_pretraining_reward_mix_follows_alpha_and_scales() -> None:
    config = replace(preset('debug'), reward=PretrainRewardSettings(alpha=0.25, vlm_scale=2.0, novelty_scale=0.5))
    agent = resolve_pretrain(config, text_dim=64).agent
    assert (agent.extr_scale, agent.intr_scale, agent.embedding_dim) == (0.5, 0.375, 64)
    lamp = resolve_pretrain(preset('cpu'), text_dim=768).agent
    assert (lamp.extr_scale, lamp.intr_scale) == pytest.approx((0.1, 0.9))     # LAMP: extr 0.1, intr 0.9


# --- replay ------------------------------------------------------------------------------------------------------

def episode(length: int, seed: int, size: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {'image_front': rng.integers(0, 256, (length + 1, size, size, 3), dtype=np.uint8),
            'state': rng.normal(size=(length + 1, 4)).astype(np.float32),
            'action': rng.uniform(-1, 1, (length, 4)).astype(np.float32),
            'reward': np.arange(length, dtype=np.float32) + 1000 * seed,
            'success': np.zeros(length, bool), 'instruction': np.array(f'task {seed}'),
            'instruction_embedding': np.full(6, seed, np.float32)}


def test_replay_windows_capacity_and_bounded_memory(tmp_path: Path) -> None:
    replay = EpisodeReplay(tmp_path, capacity=50, memory_episodes=2, cameras=('front',), n_step=3)
    for k in range(4):
        replay.add(episode(20, k), end_step=20 * (k + 1))
    assert [e.index for e in replay.episodes] == [2, 3] and replay.transitions == 40   # oldest deleted beyond 50
    assert sorted(p.name for p in tmp_path.iterdir()) == [episode_name(2, 60), episode_name(3, 80)]
    batch = replay.sample(64, np.random.default_rng(0))
    assert batch['image_front'].shape == (64, 4, 8, 8, 3) and batch['action'].shape == (64, 3, 4)
    assert batch['state'].shape == (64, 4, 4) and batch['reward'].shape == (64, 3)
    seeds = batch['instruction'][:, 0].astype(int)
    start = batch['reward'][:, 0] - 1000 * seeds
    np.testing.assert_array_equal(batch['reward'] - batch['reward'][:, :1], np.tile([0, 1, 2], (64, 1)))
    assert set(seeds) == {2, 3} and start.min() >= 0 and start.max() <= 17      # windows stay inside the episode
    for row in range(64):
        source = episode(20, int(seeds[row]))
        t = int(start[row])
        np.testing.assert_array_equal(batch['image_front'][row], source['image_front'][t:t + 4])
    replay.add(episode(20, 4), end_step=100)
    replay.sample(32, np.random.default_rng(1))
    assert len(replay._memory) <= 2                                               # the LRU bound holds
    assert replay.truncate_after(80) == 1 and [e.end_step for e in replay.episodes] == [80]


def test_replay_skips_torn_and_foreign_files(tmp_path: Path) -> None:
    replay = EpisodeReplay(tmp_path, capacity=1000, memory_episodes=4, cameras=('front',), n_step=2)
    for k in range(3):
        replay.add(episode(10, k), end_step=10 * (k + 1))
    good = tmp_path / episode_name(1, 20)
    torn = tmp_path / episode_name(3, 40)
    torn.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])           # a write cut off midway
    (tmp_path / episode_name(4, 50)).write_bytes(b'not an npz at all')
    (tmp_path / 'notes.txt').write_text('hello')
    (tmp_path / f'.{episode_name(5, 60)}.abc123').write_bytes(b'partial')        # atomic write's leftover temp
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        reopened = EpisodeReplay(tmp_path, capacity=1000, memory_episodes=4, cameras=('front',), n_step=2)
    messages = [str(w.message) for w in caught if issubclass(w.category, ReplayWarning)]
    assert len(messages) == 3 and any('000003-000000040' in m for m in messages)
    assert [e.index for e in reopened.episodes] == [0, 1, 2] and reopened.transitions == 30
    assert not (tmp_path / f'.{episode_name(5, 60)}.abc123').exists()
    assert good.read_bytes() == (tmp_path / episode_name(1, 20)).read_bytes()   # the rest is untouched
    assert reopened.sample(8, np.random.default_rng(0))['image_front'].shape == (8, 3, 8, 8, 3)


# --- reward labels -------------------------------------------------------------------------------------------

def test_vlm_labels_are_the_reward_model_scores(r3m_checkpoint: Path) -> None:
    model = R3MReward.load(r3m_checkpoint)
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    rewards = VlmRewardLabeler(model).label('ep0', frames, 'pick up the mug')
    embedded = model.embed_images(frames)
    expected = model.score(embedded[:1], embedded[1:], model.embed_instructions(['pick up the mug']))
    np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-6)
    upsized = VlmRewardLabeler(model, image_size=64).label('ep1', frames, 'pick up the mug')
    assert upsized.shape == (5,) and not np.allclose(upsized, rewards)

    standardizer = RewardStandardizer()
    values = np.random.default_rng(1).normal(3.0, 2.0, 5000).astype(np.float32)
    out = standardizer.update_and_standardize('a', values)
    assert abs(out.mean()) < 1e-3 and abs(out.std() - 1) < 1e-3
    other = standardizer.update_and_standardize('b', np.array([5.0, 7.0], np.float32))
    np.testing.assert_allclose(other, [-1.0, 1.0])                               # per instruction
    restored = RewardStandardizer()
    restored.load_state(json.loads(json.dumps(standardizer.state())))
    assert restored.stats == standardizer.stats


# --- checkpoints and resume ------------------------------------------------------------------------------------

@pytest.mark.parametrize('config', [TINY, dataclasses.replace(TINY, recon_weight=1.0)], ids=['plain', 'decoder'])
def test_checkpoint_restores_weights_optimizer_counters_and_rng(tmp_path: Path, config: AgentConfig) -> None:
    agent = DrQAgent(config, seed=0)
    for seed in range(3):
        agent.update(random_batch(config, seed=seed))
    path = save_checkpoint(tmp_path, 7, agent, 'hash', {'episodes': 2})
    expected_noise = torch.randn(5)
    fresh = DrQAgent(config, seed=1)
    payload = load_checkpoint(path, fresh, 'hash')
    assert payload['step'] == 7 and payload['trainer'] == {'episodes': 2} and fresh.updates == 3
    torch.testing.assert_close(torch.randn(5), expected_noise)                   # torch RNG restored
    for name, module in agent.modules().items():
        for (key, a), b in zip(module.state_dict().items(), fresh.modules()[name].state_dict().values()):
            assert torch.equal(a, b), f'{name}.{key}'
    for name, optimizer in agent.optimizers().items():
        mine, theirs = optimizer.state_dict(), fresh.optimizers()[name].state_dict()
        assert mine['param_groups'] == theirs['param_groups'] or name
        for index, slots in mine['state'].items():
            for slot, value in slots.items():
                assert torch.equal(value, theirs['state'][index][slot]), f'{name} {index} {slot}'
    batch = random_batch(config, seed=9)
    torch.manual_seed(5)
    a = agent.update(batch)
    torch.manual_seed(5)
    assert fresh.update(batch) == a                                              # identical continuation
    with pytest.raises(ValueError, match='config hash'):
        load_checkpoint(path, DrQAgent(config), 'other')


def test_resume_continues_step_counter_and_optimizer(tmp_path: Path, capsys) -> None:
    run = tmp_path / 'ft'
    assert train_main(['finetune', '--run-dir', str(run), '--preset', 'debug', '--task', 'push_button',
                       '--steps', '120']) == 0
    out = capsys.readouterr().out
    assert 'starting from' in out and str(run.resolve()) in out and 'learning curve' in out
    agent, _, _, step = load_agent(run)
    adam_step = float(agent.critic_opt.state_dict()['state'][0]['step'])
    assert step == 120 and adam_step == agent.updates > 0
    with open(run / 'lock', 'a+') as held:                                   # another process is training it
        fcntl.flock(held, fcntl.LOCK_EX)
        assert train_main(['finetune', '--run-dir', str(run), '--steps', '180']) == 1
    assert 'being trained by another process' in capsys.readouterr().err
    assert train_main(['finetune', '--run-dir', str(run), '--steps', '180']) == 0
    assert 'resuming at env step 120' in capsys.readouterr().out
    resumed, _, _, step = load_agent(run)
    assert step == 180 and float(resumed.critic_opt.state_dict()['state'][0]['step']) == resumed.updates
    assert resumed.updates == agent.updates + 30                                 # 60 more steps, one update per 2
    assert [e['step'] for e in json.loads((run / 'evals.json').read_text())] == [0, 120, 180]
    assert train_main(['finetune', '--run-dir', str(run), '--preset', 'debug', '--set', 'agent.lr=0.5']) == 1
    assert 'exists with another config (agent.lr' in capsys.readouterr().err


def test_updates_per_step_sets_the_update_to_data_ratio(tmp_path: Path) -> None:
    runs = {}
    for ratio in (1, 3):
        run = tmp_path / f'utd{ratio}'
        assert train_main(['finetune', '--run-dir', str(run), '--preset', 'debug', '--task', 'push_button',
                           '--steps', '70', '--set', f'updates_per_step={ratio}', '--set', 'video=false']) == 0
        runs[ratio] = load_agent(run)[0].updates
    assert runs[1] > 0 and runs[3] == 3 * runs[1]


def test_kill_9_then_resume(tmp_path: Path) -> None:
    run = tmp_path / 'ft'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    process = subprocess.Popen([sys.executable, '-m', 'training.cli', 'finetune', '--run-dir', str(run),
                                '--preset', 'debug', '--task', 'push_button', '--steps', '100000',
                                '--set', 'checkpoint_every=30'], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(s >= 60 for s, _ in list_checkpoints(run)):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = list_checkpoints(run)[-1][0]
    assert killed_at >= 60, "no checkpoint beyond step 60 within 2 minutes"
    resumed = run_cli('finetune', '--run-dir', str(run), '--steps', str(killed_at + 60))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resuming at env step {killed_at}' in resumed.stdout
    assert [s for s, _ in list_checkpoints(run)][-1] == killed_at + 60
    assert not [p for p in (run / 'checkpoints').iterdir() if p.name.startswith('.')]   # no partial checkpoint
    replay = EpisodeReplay(run / 'replay', 600, 4, ('front',), 2)
    assert replay.transitions == killed_at + 60                                  # nothing lost, nothing twice
    assert [e.index for e in replay.episodes] == list(range(len(replay.episodes)))


def test_expert_prefill_stores_demonstrations(tmp_path: Path) -> None:
    run = tmp_path / 'ft'
    assert train_main(['finetune', '--run-dir', str(run), '--preset', 'debug', '--task', 'push_button',
                       '--steps', '60', '--set', 'prefill_expert_episodes=1']) == 0
    replay = EpisodeReplay(run / 'replay', 600, 4, ('front',), 2)
    demonstration, *random_actions = (replay.load(record) for record in replay.episodes)
    assert demonstration['success'][-1] and demonstration['terminated']       # ended at its success
    assert random_actions and not any(episode['success'].any() for episode in random_actions)
    with pytest.raises(ValueError, match='prefill_expert_episodes must be >= 0'):
        replace(preset('debug'), prefill_expert_episodes=-1)


def test_runs_from_before_later_settings_load_as_trained_and_keep_their_config_hash() -> None:
    """A config.yaml written before the LEGACY_VALUES settings existed reads them at the values the run was
    trained with, and its checkpoints' hash (computed then, without them) still matches."""
    older = to_dict(replace(preset('cpu'), steps=1))
    for dotted in LEGACY_VALUES:
        *parents, key = dotted.split('.')
        node = older
        for parent in parents:
            node = node[parent]
        del node[key]
    old_hash = hashlib.sha256(yaml.safe_dump(older, sort_keys=False).encode()).hexdigest()[:16]
    loaded = load_yaml(yaml.safe_dump(older, sort_keys=False))
    assert loaded.finetune.demo_episodes == 0 and loaded.finetune.reward == 'task' and not loaded.agent.bc_weight
    assert run_hash(loaded) == old_hash
    assert run_hash(replace(loaded, prefill_expert_episodes=3)) != old_hash
    assert run_hash(replace(loaded, steps=5)) == old_hash
    assert run_hash(preset('cpu')) != old_hash                  # new runs: RLPD finetuning settings, hashed


# --- the whole chain ---------------------------------------------------------------------------------------------

def test_pretrain_finetune_export_runs_in_onnxruntime(tmp_path: Path, r3m_checkpoint: Path) -> None:
    pretrained, finetuned, bundle = tmp_path / 'pt', tmp_path / 'ft', tmp_path / 'bundle'
    assert train_main(['pretrain', '--run-dir', str(pretrained), '--preset', 'debug', '--steps', '120',
                       '--reward-checkpoint', str(r3m_checkpoint), '--alpha', '0.3',
                       '--set', 'agent.recon_weight=1.0']) == 0
    assert 'decoder' in load_agent(pretrained)[0].modules()        # pretrained with the reconstruction loss
    info = json.loads((pretrained / 'run.json').read_text())
    assert info['text_encoder']['kind'] == 'r3m' and info['mode'] == 'pretrain'
    assert load_yaml((pretrained / 'config.yaml').read_text()).agent.intr_scale == pytest.approx(0.7)
    for name in ('config.yaml', 'seeds.json', 'evals.json', 'learning_curve.png', 'instructions.json'):
        assert (pretrained / name).is_file(), name
    assert list((pretrained / 'tb').iterdir()) and list((pretrained / 'videos').glob('eval_*.mp4'))
    stored = np.load(sorted((pretrained / 'replay').iterdir())[0])
    assert stored['vlm_reward'].shape == stored['reward'].shape and stored['image_front'].dtype == np.uint8

    assert train_main(['finetune', '--run-dir', str(finetuned), '--preset', 'debug', '--task', 'push_button',
                       '--init', str(pretrained), '--steps', '60', '--tune-instruction',
                       '--num-tune-instructions', '3', '--critic-linear-probe']) == 0
    tuning = json.loads((finetuned / 'instruction_tuning.json').read_text())
    assert len(tuning['candidates']) == 3 and tuning['candidates'][0]['instruction'] == 'push button'
    info = json.loads((finetuned / 'run.json').read_text())
    assert info['instruction'] == tuning['chosen'] and info['init_step'] == 120
    assert info['text_encoder'] == json.loads((pretrained / 'run.json').read_text())['text_encoder']

    assert train_main(['eval', str(finetuned), '--episodes', '2']) == 0
    report = json.loads((finetuned / 'eval_step_000000060.json').read_text())
    assert report['episodes'] == 2 and report['instructions'] == [info['instruction']]
    assert (finetuned / 'videos' / 'cli_eval_step_000000060.mp4').stat().st_size > 0

    assert export_main([str(finetuned), '--out', str(bundle)]) == 0
    agent, config, info, step = load_agent(finetuned)
    assert 'decoder' not in agent.modules()             # finetuning adds no reconstruction unless it is asked
    runtime = PolicyRuntime.load(bundle)
    assert runtime.manifest.model_version.endswith(f':step{step}:text-r3m@{info.text_encoder.digest}')
    from training.evaluate import make_env
    from training.runs import embedder_for
    embed = embedder_for(config, info.text_encoder)
    torch_embedding = embed(info.instruction)
    np.testing.assert_allclose(runtime.embed_instruction(info.instruction), torch_embedding, atol=1e-4)
    env = make_env('push_button', config.env)
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        want, _ = agent.act(obs, torch_embedding)
        got = runtime.act(obs['image_front'], obs['state'], torch_embedding)
        np.testing.assert_allclose(got, want, atol=1e-4)
        obs, *_ = env.step(want)
    env.close()


def test_a_privileged_critic_sees_the_simulators_state_and_the_bundle_does_not(tmp_path: Path, capsys) -> None:
    """finetune.privileged_critic (sim-only asymmetric actor-critic): every stored frame, the demos' too, carries
    sim.privileged's state (consistent with the stored TCP and reward), the critic takes it, and the exported
    policy still acts on what a robot has. A critic that cannot take it (a pretrained or finetuned start) is refused."""
    run, bundle = tmp_path / 'ft', tmp_path / 'bundle'
    privileged = ['--set', 'finetune.privileged_critic=true', '--set', 'finetune.demo_episodes=1']
    assert train_main(['finetune', '--run-dir', str(run), '--preset', 'debug', '--task', 'pick_up_cup',
                       '--steps', '90', *privileged]) == 0
    for folder in ('replay', 'demo_replay'):
        for path in sorted((run / folder).iterdir()):
            stored = np.load(path)
            frames = len(stored['state'])
            assert stored['privileged'].shape == (frames, PRIVILEGED_DIM) and stored['privileged'].dtype == np.float32
            low, high = (np.asarray(v) for v in (ArmConfig().target_low, ArmConfig().target_high))
            focus = (stored['privileged'][:, :3] + 1.0) * (high - low) / 2.0 + low
            offset = np.clip((focus - stored['state'][:, :3]) / OFFSET_UNIT_M, -OFFSET_CLIP, OFFSET_CLIP)
            np.testing.assert_allclose(stored['privileged'][:, 3:6], offset, atol=2e-3)
            np.testing.assert_allclose(stored['privileged'][1:, 6], stored['reward'], atol=1e-6)
    agent, config, _, _ = load_agent(run)
    assert agent.updates > 0 and config.agent.privileged_dim == PRIVILEGED_DIM
    assert agent.critic.q1[0].in_features == PRIVILEGED_DIM + (config.agent.feature_dim + config.agent.state_dim
                                                               + config.agent.language_dim + config.agent.action_dim)
    assert export_main([str(run), '--out', str(bundle)]) == 0
    runtime = PolicyRuntime.load(bundle)
    obs = {'image_front': np.zeros((32, 32, 3), np.uint8), 'state': np.array([0.5, 0.0, 0.3, 1.0], np.float32)}
    embedding = np.zeros(config.agent.embedding_dim, np.float32)
    np.testing.assert_allclose(runtime.act(obs['image_front'], obs['state'], embedding),
                               agent.act(obs, embedding)[0], atol=1e-4)
    capsys.readouterr()
    assert train_main(['finetune', '--run-dir', str(tmp_path / 'again'), '--preset', 'debug', '--task',
                       'pick_up_cup', '--init', str(run), '--steps', '30', *privileged]) == 1
    assert 'error: finetune.privileged_critic needs a fresh critic' in capsys.readouterr().err


def test_a_stalled_episode_is_taken_over_by_the_scripted_expert_and_its_stretch_becomes_a_demo(tmp_path: Path) -> None:
    """finetune.help_episodes (HIL-SERL's interventions in sim): in the first episodes the scripted expert drives
    from the step the episode has run stall_steps without success; those steps are flagged and counted, their
    stretch joins the demo buffer, and the helped success is not self-imitated as the policy's own."""
    run = tmp_path / 'ft'
    assert train_main(['finetune', '--run-dir', str(run), '--preset', 'debug', '--task', 'push_button',
                       '--steps', '90', '--set', 'finetune.demo_episodes=1', '--set', 'finetune.help_episodes=2',
                       '--set', 'finetune.stall_steps=4', '--set', 'finetune.success_to_demos=true']) == 0
    replay = EpisodeReplay(run / 'replay', 600, 4, ('front',), 2)
    first, second, *later = (replay.load(record) for record in replay.episodes)
    for helped in (first, second):
        flags = helped['intervention']
        assert not flags[:4].any() and flags[4:].all() and helped['success'][-1] and helped['terminated']
    assert later and not any('intervention' in episode for episode in later)
    demos = EpisodeReplay(run / 'demo_replay', 600, 4, ('front',), 2)
    stretches = [demos.load(record) for record in demos.episodes if record.end_step > 0]
    assert len(stretches) == 2, 'one stretch per helped episode, and the helped successes are not promoted'
    for stretch, helped in zip(stretches, (first, second)):
        assert stretch['intervention'].all() and bool(stretch['terminated'])
        np.testing.assert_array_equal(stretch['action'], helped['action'][4:])
        np.testing.assert_array_equal(stretch['state'], helped['state'][4:])
    with pytest.raises(ValueError, match='finetune.stall_steps must be >= 1'):
        replace(preset('debug'), finetune=FinetuneSettings(stall_steps=0))
    failed = tmp_path / 'takeover_is_failure'                # RLIF: the takeover ends the policy's episode, failed
    assert train_main(['finetune', '--run-dir', str(failed), '--preset', 'debug', '--task', 'push_button',
                       '--steps', '40', '--set', 'finetune.demo_episodes=1', '--set', 'finetune.help_episodes=1',
                       '--set', 'finetune.stall_steps=4', '--set', 'finetune.takeover_is_failure=true']) == 0
    own = EpisodeReplay(failed / 'replay', 600, 4, ('front',), 2)
    policy_part = own.load(own.episodes[0])
    assert len(policy_part['action']) == 4 and bool(policy_part['terminated']) and not policy_part['intervention'].any()
    assert not policy_part['success'].any() and len(EpisodeReplay(failed / 'demo_replay', 600, 4, ('front',), 2).episodes) == 2


def test_tuning_candidates_start_with_the_task_phrases() -> None:
    seen = ['lift the mug', 'grab the bowl', 'push button']
    candidates = tuning_candidates('push_button', 7, seen, seed=0)
    assert candidates[:5] == ['push button', 'push the button', 'press the button', 'press down on the button',
                              'push down the button']
    assert sorted(candidates[5:]) == ['grab the bowl', 'lift the mug']
    assert tuning_candidates('push_button', 2, seen, seed=0) == ['push button', 'push the button']


def test_clear_errors(tmp_path: Path, capsys) -> None:
    assert train_main(['pretrain', '--run-dir', str(tmp_path / 'pt'), '--preset', 'debug']) == 1
    assert 'pretraining needs --reward-checkpoint' in capsys.readouterr().err
    assert train_main(['pretrain', '--run-dir', str(tmp_path / 'pt2'), '--preset', 'debug',
                       '--reward-checkpoint', str(tmp_path / 'nothing')]) == 2
    assert 'nothing' in capsys.readouterr().err
    assert train_main(['finetune', '--run-dir', str(tmp_path / 'ft'), '--preset', 'debug']) == 1
    assert 'needs --task' in capsys.readouterr().err
    assert train_main(['finetune', '--run-dir', str(tmp_path / 'ft'), '--task', 'fly']) == 1
    assert "unknown task 'fly'" in capsys.readouterr().err
    assert train_main(['finetune', '--run-dir', str(tmp_path / 'ft2'), '--task', 'push_button', '--init', str(tmp_path),
                       '--reward-checkpoint', str(tmp_path)]) == 1
    assert '--reward-checkpoint only chooses the text encoder' in capsys.readouterr().err
    assert train_main(['eval', str(tmp_path)]) == 1
    assert 'not a complete run' in capsys.readouterr().err
    assert export_main([str(tmp_path), '--out', str(tmp_path / 'b')]) == 1
    assert 'not a training run directory' in capsys.readouterr().err


@pytest.mark.parametrize('argv', [['--help'], ['pretrain', '--help'], ['finetune', '--help'], ['eval', '--help']])
def test_lamp_train_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_main(argv)
    assert exit_info.value.code == 0 and 'usage: lamp-train' in capsys.readouterr().out


@pytest.mark.parametrize('argv', [['--help'], ['random', '--help'], ['RUN', '--help']])
def test_lamp_export_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        export_main(argv)
    assert exit_info.value.code == 0 and 'lamp-export' in capsys.readouterr().out


def test_windows_that_end_a_terminated_episode_do_not_bootstrap(tmp_path: Path) -> None:
    replay = EpisodeReplay(tmp_path / 'r', 600, 4, ('front',), 2)
    steps = 5
    episode = {'image_front': np.zeros((steps + 1, 8, 8, 3), np.uint8), 'state': np.zeros((steps + 1, 4), np.float32),
               'action': np.zeros((steps, 4), np.float32), 'reward': np.zeros(steps, np.float32),
               'success': np.arange(steps) == steps - 1, 'terminated': np.array(True),
               'instruction': np.array('push button'), 'instruction_embedding': np.zeros(3, np.float32)}
    replay.add(episode, steps)
    batch = replay.sample(64, np.random.default_rng(0), 'success')
    ends_at_success = batch['reward'][:, -1] == 1.0         # the window's last transition is the success
    assert batch['reward'].dtype == np.float32 and ends_at_success.any() and (~ends_at_success).any()
    assert np.array_equal(batch['terminal'], ends_at_success)


def test_failure_is_terminal_ends_failed_episodes_in_the_replay_only(tmp_path: Path) -> None:
    """finetune.failure_is_terminal: the last window of an episode that never succeeded is not bootstrapped (its
    value after the time limit is 0); without it, or in the demo buffer (successes, operators' cut segments),
    it is."""
    steps = 5

    def episode(success: bool) -> dict[str, np.ndarray]:
        return {'image_front': np.zeros((steps + 1, 8, 8, 3), np.uint8),
                'state': np.arange(steps + 1, dtype=np.float32)[:, None].repeat(4, 1),
                'action': np.zeros((steps, 4), np.float32), 'reward': np.zeros(steps, np.float32),
                'success': (np.arange(steps) == steps - 1) & success, 'terminated': np.array(success),
                'instruction': np.array('push button'), 'instruction_embedding': np.zeros(3, np.float32)}

    replay, demos = (EpisodeReplay(tmp_path / name, 600, 4, ('front',), 2) for name in ('replay', 'demos'))
    replay.add(episode(False), steps)
    demos.add(episode(False), steps)                          # e.g. an operator's segment cut mid-episode
    rng = np.random.default_rng(0)
    last_window = lambda batch: batch['state'][:, -1, 0] == steps              # noqa: E731
    plain = replay.sample(64, rng, 'success')
    assert last_window(plain).any() and not plain['terminal'].any(), 'by default a time-out bootstraps'
    ended = replay.sample(64, rng, 'success', failure_is_terminal=True)
    assert last_window(ended).any() and np.array_equal(ended['terminal'], last_window(ended))
    mixed = mixed_sample(replay, demos, 64, 0.5, rng, 'success', failure_is_terminal=True)
    assert np.array_equal(mixed['terminal'], last_window(mixed) & ~mixed['demo'])
    assert (last_window(mixed) & mixed['demo']).any()
    with pytest.raises(ValueError, match="failure_is_terminal needs finetune.reward 'success'"):
        replace(preset('debug'), finetune=FinetuneSettings(failure_is_terminal=True, reward='task'))
