"""ZeST CLIP reward: a tiny open_clip model with random weights, saved in the checkpoint layout and loaded
through `ClipReward.load`, against a reference computed here with open_clip's own transform, tokenizer and
forward (no pretrained CLIP weights exist on a test machine)."""
from __future__ import annotations

import builtins
import json
import pickle
from pathlib import Path

import huggingface_hub
import numpy as np
import open_clip
import pytest
import safetensors.torch
import torch
from open_clip.model import set_model_preprocess_cfg
from PIL import Image

from models.clip_reward import (CONFIG_FILE, DEFAULT_BASELINE_PROMPT, SAFETENSORS_FILE, ClipReward, ClipRewardConfig,
                                default_checkpoint_dir, save_checkpoint)
from models.reward_model import RewardModel, WeightsMissing

CONTEXT = 16
SIZE = 32
TINY_CFG = {
    'embed_dim': 24,
    'vision_cfg': {'image_size': SIZE, 'layers': 2, 'width': 64, 'patch_size': 8, 'head_width': 32},
    # vocab_size must be CLIP's BPE vocabulary (49408): the tokenizer is the real one.
    'text_cfg': {'context_length': CONTEXT, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 2},
}
MEAN, STD = (0.45, 0.40, 0.35), (0.25, 0.22, 0.28)    # not CLIP's defaults: the checkpoint's must be used
INSTRUCTIONS = ['push the button', 'Open the TOP drawer, then close it!', 'pick up the red block ' * 8]


def tiny_clip(cfg: dict, seed: int = 0) -> open_clip.CLIP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg)
    size = cfg['vision_cfg']['image_size']
    set_model_preprocess_cfg(model, {'size': size, 'mean': MEAN, 'std': STD, 'interpolation': 'bicubic',
                                     'resize_mode': 'shortest'})
    return model.eval()


def smooth_images(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """Camera-like frames: coarse random colour fields, upsampled (plus noise, so resizing has work to do)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, 4, 4)).astype(np.float32))
    fields = torch.nn.functional.interpolate(coarse, size=(height, width), mode='bilinear').permute(0, 2, 3, 1)
    noisy = fields.numpy() + rng.normal(0, 8, fields.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@torch.no_grad()
def reference_images(model: open_clip.CLIP, images: np.ndarray, size) -> np.ndarray:
    transform = open_clip.image_transform(size, is_train=False, mean=MEAN, std=STD, interpolation='bicubic',
                                          resize_mode='shortest')
    batch = torch.stack([transform(Image.fromarray(image)) for image in images])
    return model.encode_image(batch, normalize=True).numpy()


@torch.no_grad()
def reference_texts(model: open_clip.CLIP, texts: list[str]) -> np.ndarray:
    return model.encode_text(open_clip.tokenize(texts, context_length=CONTEXT), normalize=True).numpy()


class Tiny:
    def __init__(self, model: open_clip.CLIP, checkpoint: Path, reward: ClipReward) -> None:
        self.model, self.checkpoint, self.reward = model, checkpoint, reward


@pytest.fixture(scope='module')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    model = tiny_clip(TINY_CFG)
    checkpoint = save_checkpoint(model, TINY_CFG, tmp_path_factory.mktemp('clip') / 'tiny-clip', arch='tiny-clip')
    return Tiny(model, checkpoint, ClipReward.load(checkpoint, config=ClipRewardConfig(batch_size=3)))


def test_save_checkpoint_writes_the_open_clip_layout(tiny: Tiny):
    assert sorted(p.name for p in tiny.checkpoint.iterdir()) == sorted([CONFIG_FILE, SAFETENSORS_FILE])
    config = json.loads((tiny.checkpoint / CONFIG_FILE).read_text())
    assert config['arch'] == 'tiny-clip' and config['model_cfg'] == TINY_CFG
    assert config['preprocess_cfg']['mean'] == list(MEAN) and config['preprocess_cfg']['std'] == list(STD)
    saved = safetensors.torch.load_file(tiny.checkpoint / SAFETENSORS_FILE)
    assert saved.keys() == tiny.model.state_dict().keys()
    reward: RewardModel = tiny.reward
    assert reward.name == 'clip-tiny-clip' and tiny.reward.image_size == (SIZE, SIZE)


def test_image_embeddings_match_open_clip_forward(tiny: Tiny):
    at_size = smooth_images(5, SIZE, SIZE, seed=1)             # batch_size 3: two forward passes
    got = tiny.reward.embed_images(at_size)
    assert got.dtype == np.float32 and got.shape == (5, TINY_CFG['embed_dim'])
    np.testing.assert_allclose(got, reference_images(tiny.model, at_size, SIZE), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    # Other sizes: resized (shorter side) and centre-cropped; torch's antialiased bicubic on uint8 is within
    # one grey level of PIL's, which the reference uses.
    for height, width in ((48, 40), (20, 28), (128, 128)):
        images = smooth_images(4, height, width, seed=height)
        np.testing.assert_allclose(tiny.reward.embed_images(images), reference_images(tiny.model, images, SIZE),
                                   atol=1e-3)


def test_non_square_model_input(tmp_path: Path):
    cfg = json.loads(json.dumps(TINY_CFG))
    cfg['vision_cfg']['image_size'] = [24, 32]
    model = tiny_clip(cfg, seed=3)
    reward = ClipReward.load(save_checkpoint(model, cfg, tmp_path / 'wide', arch='wide'))
    assert reward.image_size == (24, 32)
    images = smooth_images(3, 60, 50, seed=4)
    np.testing.assert_allclose(reward.embed_images(images), reference_images(model, images, (24, 32)), atol=1e-3)


def test_text_embeddings_match_open_clip_forward(tiny: Tiny):
    got = tiny.reward.embed_instructions(INSTRUCTIONS)     # the last is longer than the context: cut
    assert got.dtype == np.float32 and got.shape == (3, TINY_CFG['embed_dim'])
    np.testing.assert_allclose(got, reference_texts(tiny.model, INSTRUCTIONS), atol=1e-5)
    np.testing.assert_allclose(tiny.reward.baseline_embedding, reference_texts(tiny.model, [DEFAULT_BASELINE_PROMPT])[0],
                               atol=1e-5)
    assert tiny.reward.embed_instructions([]).shape == (0, TINY_CFG['embed_dim'])


def test_score_is_the_zest_formula(tiny: Tiny):
    frames = smooth_images(4, SIZE, SIZE, seed=7)
    f = reference_images(tiny.model, frames, SIZE)
    g = reference_texts(tiny.model, INSTRUCTIONS[:1] + [DEFAULT_BASELINE_PROMPT])
    expected = ((f[1:] - f[:1]) * (g[0] - g[1])).sum(axis=1)   # (f(o_t) - f(o_0)) · (g(l) - g(l_0))
    r = tiny.reward
    got = r.score(r.embed_images(frames[:1]), r.embed_images(frames[1:]), r.embed_instructions(INSTRUCTIONS[:1]))
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_zest_properties(tiny: Tiny):
    r = tiny.reward
    frames = r.embed_images(smooth_images(4, SIZE, SIZE, seed=8))
    instruction = r.embed_instructions(INSTRUCTIONS[:1])
    first, later = frames[:1], frames[1:]
    np.testing.assert_allclose(r.score(later, later, instruction), 0.0, atol=1e-7)    # no change, no reward
    np.testing.assert_allclose(r.score(later, first, instruction), -r.score(first, later, instruction), atol=1e-7)
    # The text delta is not zero (LAMP's released code encodes the instruction twice, so its reward is 0)...
    assert np.abs(r.score(first, later, instruction)).min() > 1e-4
    # ...and an instruction equal to the baseline prompt is exactly that degenerate case.
    np.testing.assert_allclose(r.score(first, later, r.embed_instructions([r.baseline_prompt])), 0.0, atol=1e-7)
    # The baseline prompt is a real input: another one gives other rewards.
    other = ClipReward(tiny.model, open_clip.get_tokenizer(f'local-dir:{tiny.checkpoint}'), 'tiny-clip',
                       ClipRewardConfig(baseline_prompt='an empty table'))
    assert other.baseline_prompt == 'an empty table'
    assert not np.allclose(other.score(first, later, instruction), r.score(first, later, instruction), atol=1e-4)


def test_score_broadcasts_rows(tiny: Tiny):
    r = tiny.reward
    frames = r.embed_images(smooth_images(4, SIZE, SIZE, seed=9))
    texts = r.embed_instructions(INSTRUCTIONS + ['close the drawer'])
    explicit = r.score(np.repeat(frames[:1], 4, axis=0), frames, np.repeat(texts[:1], 4, axis=0))
    np.testing.assert_allclose(r.score(frames[:1], frames, texts[:1]), explicit, atol=1e-7)
    per_row = np.array([r.score(frames[:1], frames[i:i + 1], texts[i:i + 1])[0] for i in range(4)])
    np.testing.assert_allclose(r.score(frames[:1], frames, texts), per_row, atol=1e-7)
    with pytest.raises(ValueError, match='row counts'):
        r.score(frames[:2], frames[:3], texts[:1])
    with pytest.raises(ValueError, match=r'first must be a 2-D array \[N, 24\]'):
        r.score(frames[0], frames, texts[:1])
    with pytest.raises(ValueError, match=r'instruction must be a 2-D array \[N, 24\]'):
        r.score(frames, frames, texts[:, :10])


def test_image_input_is_validated(tiny: Tiny):
    image = smooth_images(1, SIZE, SIZE, seed=0)
    with pytest.raises(ValueError, match='uint8'):
        tiny.reward.embed_images(image.astype(np.float32))
    with pytest.raises(ValueError, match='uint8'):
        tiny.reward.embed_images(image.tolist())
    with pytest.raises(ValueError, match=r'got shape \(32, 32, 3\)'):
        tiny.reward.embed_images(image[0])
    with pytest.raises(ValueError, match=r'got shape \(1, 32, 32, 4\)'):
        tiny.reward.embed_images(np.concatenate([image, image[..., :1]], axis=-1))
    with pytest.raises(ValueError, match='list of str'):
        tiny.reward.embed_instructions('push the button')


def test_missing_weights_say_what_to_place_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(WeightsMissing) as missing:
        ClipReward.load(tmp_path / 'nothing')
    assert str(tmp_path / 'nothing' / CONFIG_FILE) in str(missing.value)
    assert str(tmp_path / 'nothing' / SAFETENSORS_FILE) in str(missing.value)
    assert isinstance(missing.value, FileNotFoundError)

    config_only = tmp_path / 'config_only'
    config_only.mkdir()
    (config_only / CONFIG_FILE).write_text(json.dumps({'model_cfg': TINY_CFG}))
    with pytest.raises(WeightsMissing, match='has open_clip_config.json but no weights file'):
        ClipReward.load(config_only)

    monkeypatch.setenv('LAMP_ROS_HOME', str(tmp_path / 'home'))
    assert default_checkpoint_dir() == tmp_path / 'home' / 'weights' / 'clip' / 'ViT-B-32'
    with pytest.raises(WeightsMissing) as missing:
        ClipReward.load(default_checkpoint_dir())
    message = str(missing.value)
    assert str(tmp_path / 'home' / 'weights' / 'clip' / 'ViT-B-32' / CONFIG_FILE) in message
    assert 'https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K' in message
    assert 'https://huggingface.co/timm/vit_base_patch32_clip_224.openai' in message


def test_load_never_contacts_a_model_hub(tiny: Tiny, monkeypatch: pytest.MonkeyPatch):
    def no_hub(*args, **kwargs):
        raise AssertionError(f'model hub contacted: {args} {kwargs}')
    monkeypatch.setattr(open_clip.factory, 'download_pretrained_from_hf', no_hub)
    monkeypatch.setattr(open_clip.factory, 'download_pretrained', no_hub)
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', no_hub)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    reward = ClipReward.load(tiny.checkpoint)
    np.testing.assert_allclose(reward.embed_instructions(INSTRUCTIONS), tiny.reward.embed_instructions(INSTRUCTIONS))


class PickledCode:
    """A checkpoint entry that runs code when unpickled with weights_only=False."""

    def __reduce__(self):
        return builtins.print, ('pickled code ran',)


def _hf_layout(directory: Path, state: dict, with_arch: bool = False) -> Path:
    """What an open_clip Hugging Face repo holds: config without `arch`, weights as a pickled .bin."""
    directory.mkdir()
    config = {'model_cfg': TINY_CFG, 'preprocess_cfg': {'mean': list(MEAN), 'std': list(STD)}}
    (directory / CONFIG_FILE).write_text(json.dumps(config | ({'arch': 'x'} if with_arch else {})))
    torch.save(state, directory / 'open_clip_pytorch_model.bin')
    return directory


def test_bin_weights_load_and_pickled_code_is_refused(tiny: Tiny, tmp_path: Path):
    plain = ClipReward.load(_hf_layout(tmp_path / 'hf-ViT', tiny.model.state_dict()))
    assert plain.arch == 'hf-ViT'                          # no `arch` in an HF config: the directory's name
    images = smooth_images(2, SIZE, SIZE, seed=11)
    np.testing.assert_allclose(plain.embed_images(images), tiny.reward.embed_images(images), atol=1e-6)

    evil = _hf_layout(tmp_path / 'evil', {**tiny.model.state_dict(), 'extra': PickledCode()})
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        ClipReward.load(evil)


def test_wrong_keys_are_named(tiny: Tiny, tmp_path: Path):
    state = dict(tiny.model.state_dict())
    del state['visual.proj']
    state['visual.projection_typo'] = torch.zeros(3)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / CONFIG_FILE).write_text((tiny.checkpoint / CONFIG_FILE).read_text())
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, broken / SAFETENSORS_FILE)
    with pytest.raises(RuntimeError, match='visual.proj') as error:
        ClipReward.load(broken)
    assert 'visual.projection_typo' in str(error.value)


def test_hub_tokenizer_models_are_refused(tmp_path: Path):
    cfg = json.loads(json.dumps(TINY_CFG))
    cfg['text_cfg']['hf_tokenizer_name'] = 'timm/ViT-B-16-SigLIP'
    directory = tmp_path / 'siglip'
    directory.mkdir()
    (directory / CONFIG_FILE).write_text(json.dumps({'model_cfg': cfg}))
    (directory / SAFETENSORS_FILE).write_bytes(b'')
    with pytest.raises(ValueError, match='model hub'):
        ClipReward.load(directory)
    (directory / CONFIG_FILE).write_text('{"model_cfg": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        ClipReward.load(directory)
