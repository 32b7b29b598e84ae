"""Reward finetuning: episode files round-trip (a torn one is skipped with a warning), and `lamp-models
finetune-reward` on a tiny R3M (random weights, saved in the official layout) and a small synthetic video set,
whose frames change with progress differently per task, raises held-out ranking accuracy far above chance and
writes a checkpoint and an ONNX export every loader takes. (`lamp-sim record-demos`, which writes episode files
from the sim's experts, is tested in tests/test_sim_cli.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.cli import main as cli_main
from models.episodes import Episode, EpisodeError, EpisodeSkipped, iter_episodes, load_episode, save_episode
from models.r3m.checkpoint import save_checkpoint
from models.r3m.finetune import FinetuneConfig, kept_frames, sample_positions
from models.r3m.model import R3MNet
from models.r3m.reward import R3MReward
from models.r3m.runtime import OnnxR3MReward
from models.text_encoder import SentenceEncoder

SIZE, FRAMES = 48, 10
TASKS = {   # task -> paraphrases; each task moves its own thing in its own way as the episode progresses
    'push': ('push the block to the right', 'slide the block right'),
    'lift': ('lift the red block', 'raise the red block up'),
    'open': ('open the drawer', 'pull the drawer open'),
}


def synthetic_episode(task: str, rng: np.random.Generator) -> Episode:
    """Frames on a random smooth background whose change over time depends on the task."""
    coarse = rng.uniform(30, 170, (3, 3, 3)).astype(np.float32)
    background = cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    offset = int(rng.integers(-4, 5))
    frames = []
    for t in range(FRAMES):
        p = t / (FRAMES - 1)
        image = background.copy()
        if task == 'push':                          # a white block slides from left to right
            x = int(4 + p * (SIZE - 18))
            image[SIZE // 2 + offset - 6:SIZE // 2 + offset + 6, x:x + 12] = 250
        elif task == 'lift':                        # a red block rises from the bottom
            y = int(SIZE - 16 - p * (SIZE - 22))
            image[y:y + 12, SIZE // 2 + offset - 6:SIZE // 2 + offset + 6] = (240, 20, 20)
        else:                                       # a dark drawer front opens wider and wider
            width = int(4 + p * (SIZE - 12))
            image[4:16, 4:4 + width] = (20, 20, 60)
        frames.append(image)
    text = TASKS[task][int(rng.integers(len(TASKS[task])))]
    return Episode(np.clip(np.stack(frames), 0, 255).astype(np.uint8), text, True, task=task)


@pytest.fixture(scope='module')
def episode_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('episodes')
    rng = np.random.default_rng(0)
    for task in TASKS:
        for i in range(8):
            save_episode(out / f'{task}_{i:03d}.npz', synthetic_episode(task, rng))
    return out


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory, small_vocab) -> Path:
    """A tiny R3M in the official layout (64-wide heads as distilbert-base, so the loader reads its shape)."""
    n_tokens = len(small_vocab.read_text().splitlines())
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=n_tokens, seed=5)
    net = R3MNet.random(size=18, hidden_dim=64, lang_enc=text, seed=5)
    return save_checkpoint(net, tmp_path_factory.mktemp('tiny') / 'resnet18', small_vocab)


def test_episode_files_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    t = 6
    episode = Episode(rng.integers(0, 256, (t, 32, 32, 3), dtype=np.uint8), 'push the button', True, task='push',
                      image_wrist=rng.integers(0, 256, (t, 32, 32, 3), dtype=np.uint8),
                      state=rng.normal(size=(t, 4)).astype(np.float32),
                      action=rng.uniform(-1, 1, (t - 1, 4)).astype(np.float32),
                      reward=rng.normal(size=t).astype(np.float32))
    loaded = load_episode(save_episode(tmp_path / 'ep_001.npz', episode))
    for name in ('image_front', 'image_wrist', 'state', 'action', 'reward'):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(episode, name))
    assert (loaded.instruction, loaded.success, loaded.task, loaded.label) == ('push the button', True, 'push', 'push')
    minimal = load_episode(save_episode(tmp_path / 'ep_002.npz', Episode(episode.image_front, 'open it', False)))
    assert minimal.state is None and minimal.task is None and minimal.label == 'open it' and minimal.success is False
    assert [p.name for p in tmp_path.iterdir()] and not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

    with pytest.raises(EpisodeError, match='action has shape'):
        Episode(episode.image_front, 'x', True, action=np.zeros((t + 2, 4), np.float32))
    with pytest.raises(EpisodeError, match='image_front must be uint8'):
        Episode(episode.image_front.astype(np.float32), 'x', True)
    with pytest.raises(EpisodeError, match='instruction must be a non-empty str'):
        Episode(episode.image_front, '  ', True)


def test_torn_or_foreign_files_are_skipped_with_a_warning(tmp_path):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    good = save_episode(tmp_path / 'a_good.npz', Episode(frames, 'push the button', True))
    torn = save_episode(tmp_path / 'b_torn.npz', Episode(frames, 'push the button', True))
    torn.write_bytes(torn.read_bytes()[:len(torn.read_bytes()) // 2])        # a copy cut short
    np.savez(tmp_path / 'c_foreign.npz', frames=frames)                        # no instruction, no success
    with pytest.warns(EpisodeSkipped) as caught:
        episodes = list(iter_episodes(tmp_path))
    assert [episode_id for episode_id, _ in episodes] == [good.stem]
    messages = [str(w.message) for w in caught]
    assert any('b_torn.npz' in m and 'not a readable episode file' in m for m in messages), messages
    lacks = "lacks ['image_front', 'instruction', 'success']"
    assert any('c_foreign.npz' in m and lacks in m for m in messages), messages


def test_r3m_frame_sampling_stays_in_its_windows():
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 70, 5000)
    a, g, s0, s1, s2 = sample_positions(lengths, 0.2, rng).T
    assert np.all(a <= np.floor(0.2 * (lengths - 1))) and np.all(g >= np.ceil(0.8 * (lengths - 1)))
    assert np.all((0 <= s0) & (s0 < s1) & (s1 < s2) & (s2 < lengths)) and np.all(g < lengths)
    assert list(kept_frames(100, 5)) == [0, 25, 50, 74, 99] and list(kept_frames(3, 64)) == [0, 1, 2]
    with pytest.raises(ValueError, match='batch_size'):
        FinetuneConfig(batch_size=1)


def test_finetune_raises_held_out_ranking_and_saves_loadable_models(tmp_path, episode_dir, tiny_checkpoint, capsys):
    out = tmp_path / 'insim'
    assert cli_main(['finetune-reward', '--checkpoint', str(tiny_checkpoint), '--episodes', str(episode_dir),
                     '--out', str(out), '--steps', '250', '--holdout', '0.25', '--batch-size', '12',
                     '--lr', '1e-3', '--threads', '1', '--quiet']) == 0
    printed = capsys.readouterr().out
    assert 'held-out ranking, 6 episodes' in printed
    report = json.loads((out / 'finetune_report.json').read_text())
    before, after = report['holdout_before'], report['holdout_saved_checkpoint']
    assert report['train_episodes'] == 18 and report['holdout_episodes'] == 6
    assert after['instruction_pairwise'] >= 0.85, (before, after)          # chance 0.5
    assert after['instruction_top1'] >= 0.7, (before, after)               # chance 1/3
    assert after['progress_pairwise'] >= 0.8, (before, after)              # chance 0.5
    assert after['instruction_pairwise'] > before['instruction_pairwise'] + 0.2
    for name in ('instruction_pairwise', 'progress_pairwise'):               # the ONNX export ranks the same
        assert report['holdout_onnx'][name] == pytest.approx(after[name], abs=0.02)

    torch_model = R3MReward.load(out)                                       # official layout: every loader takes it
    onnx_model = OnnxR3MReward.load(out.with_name('insim_onnx'))
    episode = load_episode(episode_dir / 'push_007.npz')
    scores = []
    for model in (torch_model, onnx_model):
        e = model.embed_images(episode.image_front)
        scores.append(model.score(e[:1], e, model.embed_instructions([episode.instruction])))
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-4)

    assert cli_main(['finetune-reward', '--checkpoint', str(tiny_checkpoint), '--episodes', str(episode_dir),
                     '--out', str(out), '--steps', '5', '--quiet']) == 1
    assert 'exists; pass --overwrite' in capsys.readouterr().err


def test_finetune_last_stage_runs_and_saves(tmp_path, episode_dir, tiny_checkpoint):
    out = tmp_path / 'laststage'
    assert cli_main(['finetune-reward', '--checkpoint', str(tiny_checkpoint), '--episodes', str(episode_dir),
                     '--out', str(out), '--steps', '8', '--batch-size', '6', '--train-last-stage', '--threads', '1',
                     '--quiet']) == 0
    before, after = R3MReward.load(tiny_checkpoint).net.convnet, R3MReward.load(out).net.convnet
    assert not np.allclose(before.layer4[0].conv1.weight.numpy(), after.layer4[0].conv1.weight.numpy())  # trained
    assert np.allclose(before.layer3[0].conv1.weight.numpy(), after.layer3[0].conv1.weight.numpy())      # frozen


def test_one_task_is_refused(tmp_path, tiny_checkpoint, capsys):
    rng = np.random.default_rng(4)
    for i in range(3):
        save_episode(tmp_path / 'eps' / f'push_{i}.npz', synthetic_episode('push', rng))
    assert cli_main(['finetune-reward', '--checkpoint', str(tiny_checkpoint), '--episodes', str(tmp_path / 'eps'),
                     '--out', str(tmp_path / 'out'), '--quiet']) == 1
    assert 'needs at least two tasks' in capsys.readouterr().err
