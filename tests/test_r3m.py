"""R3M language reward: a tiny checkpoint built here in exactly the official layout (model.pt = {'r3m': ...}
with 'module.'-prefixed convnet / lang_enc.model / lang_rew keys, R3M's config.yaml, a BERT vocabulary),
loaded through the public loader and compared with a reference forward written here from plain torch,
torchvision and transformers (no pretrained R3M weights exist on a test machine: random weights stand in)."""
from __future__ import annotations

import pathlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from torchvision.transforms import functional as TF
from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

from models.cli import main as cli_main
from models.r3m.checkpoint import save_checkpoint
from models.r3m.layout import CheckpointError, read_config
from models.r3m.model import R3MNet
from models.r3m.reward import R3MReward
from models.reward_model import WeightsMissing
from models.text_encoder import SentenceEncoder

HIDDEN = 32
BERT = dict(dim=128, n_layers=2, n_heads=2, hidden_dim=256)     # 64-wide heads, as distilbert-base
INSTRUCTIONS = ['push the button', 'Pick up the RED block and put it in the drawer, then close it!', 'open']

# R3M's saved hydra config: top-level training settings, the model under `agent:` (interpolations unresolved).
CONFIG_YAML = """\
save_snapshot: true
load_snap: ''
num_workers: 10
batch_size: 16
train_steps: 2000000
seed: 1
device: cuda
experiment: train_r3m
lr: 0.0001
dataset: ego4d
doaug: rctraj
agent:
  _target_: r3m.R3M
  device: ${{device}}
  lr: ${{lr}}
  hidden_dim: {hidden}
  size: {size}
  l2weight: 1.0e-05
  l1weight: 1.0e-05
  tcnweight: 1.0
  langweight: {langweight}
  l2dist: true
  bs: ${{batch_size}}
"""


def official_state(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random R3M ResNet-18 weights under the official key names (as DataParallel(R3M).state_dict())."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        convnet = torchvision.models.resnet18(weights=None)
        convnet.fc = torch.nn.Identity()
        bert = DistilBertModel(DistilBertConfig(vocab_size=vocab_size, **BERT))
    for m in convnet.modules():     # non-trivial running statistics, so eval-mode batch norm is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
    state = {f'module.convnet.{k}': v for k, v in convnet.state_dict().items()}
    state.update({f'module.lang_enc.model.{k}': v for k, v in bert.state_dict().items()})
    # transformers 4.x saved DistilBERT's position_ids buffer; the loader must accept (and ignore) it.
    state['module.lang_enc.model.embeddings.position_ids'] = torch.arange(512)[None]
    dims = [2 * 512 + BERT['dim'], HIDDEN, HIDDEN, HIDDEN, HIDDEN, 1]
    for layer, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
        state[f'module.lang_rew.pred.{2 * layer}.weight'] = torch.randn(n_out, n_in, generator=gen) / n_in ** 0.5
        state[f'module.lang_rew.pred.{2 * layer}.bias'] = torch.randn(n_out, generator=gen) * 0.1
    return state


def write_checkpoint(root: Path, state: dict[str, torch.Tensor], vocab: Path, *, size: int = 18,
                     hidden: int = HIDDEN, langweight: float = 1.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    torch.save({'r3m': state, 'global_step': 1000}, root / 'model.pt')
    (root / 'config.yaml').write_text(CONFIG_YAML.format(hidden=hidden, size=size, langweight=langweight))
    shutil.copyfile(vocab, root / 'vocab.txt')
    return root


@pytest.fixture(scope='module')
def state(small_vocab) -> dict[str, torch.Tensor]:
    return official_state(len(small_vocab.read_text().splitlines()))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, state, small_vocab) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp('r3m') / 'resnet18', state, small_vocab)


@pytest.fixture(scope='module')
def reward(checkpoint) -> R3MReward:
    return R3MReward.load(checkpoint)


def smooth_images(n: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, 4, 4)).astype(np.float32))
    fields = torch.nn.functional.interpolate(coarse, size=(height, width), mode='bilinear').permute(0, 2, 3, 1)
    return np.clip(fields.numpy() + rng.normal(0, 8, fields.shape), 0, 255).astype(np.uint8)


# --- reference forward, from R3M's definitions ------------------------------------------------------------------

class Reference:
    """R3M's forward written out: convnet(normalize(obs / 255)); DistilBERT last_hidden_state.mean(1) of the
    tokenized sentence; pred = 4 x (Linear, ReLU) + Linear on concat(e0, et, l)."""

    def __init__(self, state: dict[str, torch.Tensor], vocab: Path) -> None:
        self.convnet = torchvision.models.resnet18(weights=None)
        self.convnet.fc = torch.nn.Identity()
        self.convnet.load_state_dict({k[len('module.convnet.'):]: v for k, v in state.items()
                                      if k.startswith('module.convnet.')})
        self.convnet.eval()
        self.bert = DistilBertModel(DistilBertConfig(vocab_size=state['module.lang_enc.model.embeddings.'
                                                                       'word_embeddings.weight'].shape[0], **BERT))
        self.bert.load_state_dict({k[len('module.lang_enc.model.'):]: v for k, v in state.items()
                                   if k.startswith('module.lang_enc.model.') and not k.endswith('position_ids')})
        self.bert.eval()
        self.tokenizer = DistilBertTokenizerFast(vocab=str(vocab))
        self.layers = [(state[f'module.lang_rew.pred.{i}.weight'], state[f'module.lang_rew.pred.{i}.bias'])
                       for i in range(0, 10, 2)]

    @torch.no_grad()
    def image(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        x = TF.normalize(x, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        return self.convnet(x).numpy()

    @torch.no_grad()
    def sentence(self, text: str) -> np.ndarray:
        """R3M's LangEncoder on one sentence (alone, so its padding=True adds no padding)."""
        encoded = self.tokenizer([text], return_tensors='pt', padding=True)
        hidden = self.bert(encoded['input_ids'], attention_mask=encoded['attention_mask']).last_hidden_state
        return hidden.mean(1)[0].numpy()

    @torch.no_grad()
    def reward(self, e0: np.ndarray, et: np.ndarray, lang: np.ndarray) -> float:
        x = torch.from_numpy(np.concatenate([e0, et, lang]))[None]
        for i, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            if i < 4:
                x = torch.relu(x)
        return float(x[0, 0])


def close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> bool:
    scale = max(1.0, float(np.abs(want).max()))
    return float(np.abs(np.asarray(got, np.float64) - want).max()) <= rtol * scale


# --- parity with the reference --------------------------------------------------------------------------------

def test_scores_match_reference_forward(reward, state, small_vocab):
    ref = Reference(state, small_vocab)
    square, wide = smooth_images(4, 64, 64, seed=1), smooth_images(2, 48, 80, seed=2)
    for images in (square, wide):       # embedded at the size given: no resize, any aspect
        assert close(reward.embed_images(images), ref.image(images))
    lang = reward.embed_instructions(INSTRUCTIONS)       # one batch, different lengths: padding must not matter
    assert lang.shape == (3, BERT['dim']) and lang.dtype == np.float32
    for row, text in enumerate(INSTRUCTIONS):
        assert close(lang[row], ref.sentence(text))

    e = reward.embed_images(square)
    got = reward.score(e[:1], e, lang[1:2])              # one first frame and one instruction broadcast over 4
    want = np.array([ref.reward(e[0], e[t], lang[1]) for t in range(4)])
    assert got.shape == (4,) and got.dtype == np.float32
    assert close(got, want, 1e-5)
    assert np.ptp(got) > 0                               # the frames really score differently
    per_instruction = reward.score(e[:1], e[2:3], lang)  # one frame under every instruction
    assert close(per_instruction, [ref.reward(e[0], e[2], lang[i]) for i in range(3)], 1e-5)


def test_name_identifies_the_weights(reward, tmp_path, state, small_vocab):
    assert reward.name.startswith('r3m-resnet18@')
    other = dict(state)
    other['module.lang_rew.pred.8.bias'] = other['module.lang_rew.pred.8.bias'] + 1.0
    assert R3MReward.load(write_checkpoint(tmp_path / 'ck', other, small_vocab)).name != reward.name


def test_save_checkpoint_writes_the_official_layout(tmp_path, small_vocab):
    n_tokens = len(small_vocab.read_text().splitlines())
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=n_tokens, seed=3)
    net = R3MNet.random(size=18, hidden_dim=16, lang_enc=text, seed=3)
    root = save_checkpoint(net, tmp_path / 'saved', small_vocab)
    saved = torch.load(root / 'model.pt', weights_only=True)['r3m']
    assert all(k.startswith(('module.convnet.', 'module.lang_enc.model.', 'module.lang_rew.pred.')) for k in saved)
    assert {f'module.lang_rew.pred.{i}.weight' for i in (0, 2, 4, 6, 8)} <= set(saved)
    assert read_config(root / 'config.yaml').hidden_dim == 16
    loaded = R3MReward.load(root)
    fresh = R3MReward(net, small_vocab)
    images = smooth_images(3, 64, 64, seed=4)
    e_loaded, e_fresh = loaded.embed_images(images), fresh.embed_images(images)
    assert np.array_equal(e_loaded, e_fresh)
    lang = loaded.embed_instructions(['push the button'])
    assert np.array_equal(loaded.score(e_loaded[:1], e_loaded, lang), fresh.score(e_fresh[:1], e_fresh, lang))


# --- the official layout is enforced -------------------------------------------------------------------------

def test_missing_and_unexpected_keys_are_named(tmp_path, state, small_vocab):
    broken = {k: v for k, v in state.items() if k != 'module.lang_rew.pred.4.weight'}
    broken['module.lang_rew.extra.weight'] = torch.zeros(3)
    with pytest.raises(CheckpointError) as e:
        R3MReward.load(write_checkpoint(tmp_path / 'keys', broken, small_vocab))
    assert "missing keys [module.lang_rew.pred.4.weight]" in str(e.value)
    assert "unexpected keys [module.lang_rew.extra.weight]" in str(e.value)


def test_config_that_disagrees_with_the_weights_is_named(tmp_path, state, small_vocab):
    with pytest.raises(CheckpointError, match=r'module\.lang_rew\.pred\.0\.weight: \[32, 1152\] \(expected '
                                              r'\[64, 1152\]\).*hidden_dim 64'):
        R3MReward.load(write_checkpoint(tmp_path / 'hidden', state, small_vocab, hidden=64))
    with pytest.raises(CheckpointError, match='ResNet-50.*missing keys.*layer1.0.conv3'):
        R3MReward.load(write_checkpoint(tmp_path / 'size', state, small_vocab, size=50))


def test_keys_without_the_data_parallel_prefix_are_refused(tmp_path, state, small_vocab):
    unprefixed = {k.removeprefix('module.'): v for k, v in state.items()}
    with pytest.raises(CheckpointError, match="without the 'module.' prefix"):
        R3MReward.load(write_checkpoint(tmp_path / 'plain', unprefixed, small_vocab))


def test_checkpoint_without_language_head_is_refused(tmp_path, state, small_vocab):
    with pytest.raises(ValueError, match='langweight is 0'):
        R3MReward.load(write_checkpoint(tmp_path / 'nolang', state, small_vocab, langweight=0))
    visual_only = {k: v for k, v in state.items() if k.startswith('module.convnet.')}
    with pytest.raises(CheckpointError, match='no DistilBERT language encoder'):
        R3MReward.load(write_checkpoint(tmp_path / 'visual', visual_only, small_vocab))


class RunsCodeWhenUnpickled:
    """A pickle payload that would create a file if unpickling ran it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_checkpoint_with_pickled_code_is_refused(tmp_path, state, small_vocab):
    root = write_checkpoint(tmp_path / 'evil', state, small_vocab)
    marker = tmp_path / 'code_ran'
    torch.save({'r3m': state, 'hook': RunsCodeWhenUnpickled(marker)}, root / 'model.pt')
    with pytest.raises(CheckpointError, match='refused.*weights_only=True'):
        R3MReward.load(root)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path, state, small_vocab):
    root = write_checkpoint(tmp_path / 'cut', state, small_vocab)
    data = (root / 'model.pt').read_bytes()
    (root / 'model.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        R3MReward.load(root)


def test_missing_weights_say_what_to_place_where(tmp_path, checkpoint):
    with pytest.raises(WeightsMissing) as e:
        R3MReward.load(tmp_path / 'resnet34')
    message = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for name in ('model.pt', 'config.yaml', 'vocab.txt'):
        assert str(tmp_path / 'resnet34' / name) in message
    assert 'https://drive.google.com/uc?id=15bXD3QRhspIRacOKyWPw5y2HpoWUCEnE' in message   # R3M's ResNet-34 file
    assert 'lamp-models fetch r3m --size 34' in message
    partial = tmp_path / 'partial'
    partial.mkdir()
    shutil.copyfile(checkpoint / 'model.pt', partial / 'model.pt')
    with pytest.raises(WeightsMissing, match='lacks config.yaml, vocab.txt'):
        R3MReward.load(partial)


# --- input checks -------------------------------------------------------------------------------------------

def test_bad_inputs_get_clear_errors(reward):
    e = reward.embed_images(smooth_images(2, 64, 64, seed=5))
    lang = reward.embed_instructions(['push'])
    with pytest.raises(ValueError, match='uint8'):
        reward.embed_images(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r'\[N, H, W, 3\]'):
        reward.embed_images(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r'current must be a 2-D array \[N, 512\]'):
        reward.score(e, e[:, :10], lang)
    with pytest.raises(ValueError, match='row counts must match or be 1'):
        reward.score(e, np.concatenate([e, e, e]), lang)
    with pytest.raises(ValueError, match='list of str'):
        reward.embed_instructions('push the button')
    with pytest.raises(ValueError, match='empty'):
        reward.embed_instructions(['  '])
    with pytest.raises(ValueError, match='more than 62 word pieces'):
        reward.embed_instructions(['push ' * 70])
    assert reward.embed_instructions([]).shape == (0, BERT['dim'])
    assert reward.score(e[:0], e[:0], lang[:0]).shape == (0,)


# --- CLI ------------------------------------------------------------------------------------------------------

def test_cli_scores_two_png_files(tmp_path, checkpoint, reward, capsys):
    first, frame = smooth_images(2, 96, 96, seed=6)
    cv2.imwrite(str(tmp_path / 'first.png'), first[:, :, ::-1])       # OpenCV writes BGR
    cv2.imwrite(str(tmp_path / 'frame.png'), frame[:, :, ::-1])
    code = cli_main(['score', '--checkpoint', str(checkpoint), '--first', str(tmp_path / 'first.png'),
                     '--frame', str(tmp_path / 'frame.png'), '--instruction', 'push the button'])
    out = capsys.readouterr().out
    assert code == 0, out
    printed = float(out.strip().splitlines()[-1].split()[0])
    want = reward.score(reward.embed_images(first[None]), reward.embed_images(frame[None]),
                        reward.embed_instructions(['push the button']))[0]
    assert printed == pytest.approx(float(want), abs=2e-6)


def test_cli_says_where_weights_go(tmp_path, capsys):
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    code = cli_main(['score', '--checkpoint', str(tmp_path / 'resnet50'), '--first', str(image), '--frame',
                     str(image), '--instruction', 'push the button'])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / 'resnet50' / 'model.pt') in err and 'lamp-models fetch r3m --size 50' in err
