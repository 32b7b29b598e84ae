"""Relabeling: every (episode, frame, instruction) reward equals the reward model's own per-triple score, while
each frame is embedded once (in memory and across runs through the on-disk cache) and each instruction once.
The model is a real tiny R3M (random weights); `Counting` only counts the calls that reach it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.r3m.model import R3MNet
from models.r3m.reward import R3MReward
from models.relabel import FrameEmbeddingCache, relabel
from models.text_encoder import SentenceEncoder

INSTRUCTIONS = ['push the button', 'open the drawer', 'pick up the red block', 'do nothing']


class Counting:
    """Passes every call to a real reward model and counts images and instructions embedded."""

    def __init__(self, model: R3MReward) -> None:
        self.model = model
        self.name = model.name
        self.images_embedded = 0
        self.instruction_calls: list[list[str]] = []

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        self.images_embedded += len(images)
        return self.model.embed_images(images)

    def embed_instructions(self, instructions: list[str]) -> np.ndarray:
        self.instruction_calls.append(list(instructions))
        return self.model.embed_instructions(instructions)

    def score(self, first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
        return self.model.score(first, current, instruction)


@pytest.fixture(scope='module')
def model(small_vocab) -> R3MReward:
    n_tokens = len(small_vocab.read_text().splitlines())
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=n_tokens, seed=4)
    return R3MReward(R3MNet.random(size=18, hidden_dim=32, lang_enc=text, seed=4), small_vocab)


def episodes(seed: int = 0, lengths=(5, 7, 3)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f'ep{i}': rng.integers(0, 256, (t, 48, 48, 3), dtype=np.uint8) for i, t in enumerate(lengths)}


def test_rewards_equal_per_triple_scores_with_each_frame_embedded_once(model):
    eps = episodes()
    counting = Counting(model)
    rewards = relabel(counting, eps, INSTRUCTIONS, progress=False)
    assert counting.images_embedded == sum(len(f) for f in eps.values())   # once per frame
    assert counting.instruction_calls == [INSTRUCTIONS]                       # once per instruction
    lang = model.embed_instructions(INSTRUCTIONS)
    for episode_id, frames in eps.items():
        assert rewards[episode_id].shape == (len(frames), len(INSTRUCTIONS))
        assert rewards[episode_id].dtype == np.float32
        first = model.embed_images(frames[:1])
        for t in range(len(frames)):
            current = model.embed_images(frames[t:t + 1])
            for i in range(len(INSTRUCTIONS)):
                want = model.score(first, current, lang[i:i + 1])[0]
                assert rewards[episode_id][t, i] == pytest.approx(want, abs=1e-5)
    assert np.ptp(rewards['ep1']) > 0


def test_disk_cache_skips_the_image_encoder_next_run(model, tmp_path: Path):
    eps = episodes()
    first_run = relabel(model, eps, INSTRUCTIONS, FrameEmbeddingCache(model.name, tmp_path), progress=False)
    assert sorted(p.name for p in (tmp_path / model.name).iterdir()) == ['ep0.npz', 'ep1.npz', 'ep2.npz']

    counting = Counting(model)
    cache = FrameEmbeddingCache(model.name, tmp_path)            # a new process: nothing in memory
    second_run = relabel(counting, eps, INSTRUCTIONS[:2], cache, progress=False)
    assert counting.images_embedded == 0 and cache.disk_hits == 3
    for episode_id in eps:
        np.testing.assert_allclose(second_run[episode_id], first_run[episode_id][:, :2], rtol=1e-5, atol=1e-5)

    changed = dict(eps, ep1=eps['ep1'][::-1].copy())             # same id, other frames: recomputed, replaced
    relabel(counting, changed, INSTRUCTIONS, cache, progress=False)
    assert counting.images_embedded == len(eps['ep1'])
    assert cache.memory_hits == 2 and cache.computed == 1


def test_cache_belongs_to_one_model_and_validates_ids(model, tmp_path):
    with pytest.raises(ValueError, match="not of 'r3m-resnet18'"):
        relabel(model, episodes(), INSTRUCTIONS, FrameEmbeddingCache('r3m-resnet50@other'), progress=False)
    with pytest.raises(ValueError, match='episode id'):
        relabel(model, {'../escape': episodes()['ep0']}, INSTRUCTIONS, progress=False)
    with pytest.raises(ValueError, match='no instructions'):
        relabel(model, episodes(), [], progress=False)
    with pytest.raises(ValueError, match=r"episode 'ep0'.*\[T>=1, H, W, 3\]"):
        relabel(model, {'ep0': np.zeros((0, 48, 48, 3), np.uint8)}, INSTRUCTIONS, progress=False)


def test_memory_holds_the_most_recent_episodes(model, tmp_path):
    eps = episodes()
    cache = FrameEmbeddingCache(model.name, memory_episodes=2)
    relabel(model, eps, INSTRUCTIONS, cache, progress=False)
    relabel(model, {'ep2': eps['ep2']}, INSTRUCTIONS, cache, progress=False)    # still in memory
    relabel(model, {'ep0': eps['ep0']}, INSTRUCTIONS, cache, progress=False)    # evicted: embedded again
    assert (cache.computed, cache.memory_hits) == (4, 1)
