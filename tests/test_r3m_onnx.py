"""R3M on onnxruntime (the reward node's path on the robot): same numbers as torch, any frame size, file
integrity, missing-export message, and no torch imported on the robot side."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.cli import main as cli_main
from models.r3m.checkpoint import save_checkpoint
from models.r3m.model import R3MNet
from models.r3m.onnx_export import export_onnx
from models.r3m.reward import R3MReward
from models.r3m.runtime import OnnxExportInvalid, OnnxR3MReward
from models.reward_model import WeightsMissing
from models.text_encoder import SentenceEncoder

REPO = Path(__file__).resolve().parents[1]
INSTRUCTIONS = ['push the button', 'Open the top drawer, then close it again.']


def images(n: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, 4, 4, 3)).astype(np.float32)
    frames = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in coarse])
    return np.clip(frames + rng.normal(0, 8, frames.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def torch_reward(small_vocab) -> R3MReward:
    n_tokens = len(small_vocab.read_text().splitlines())
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=n_tokens, seed=1)
    return R3MReward(R3MNet.random(size=18, hidden_dim=32, lang_enc=text, seed=1), small_vocab,
                     name='r3m-resnet18@tiny')


@pytest.fixture(scope='module')
def export_dir(tmp_path_factory, torch_reward) -> Path:
    out = tmp_path_factory.mktemp('onnx') / 'resnet18_onnx'
    export_onnx(torch_reward, out, verify_sizes=(64,))
    return out


def close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-4) -> bool:
    return float(np.abs(got - want).max()) <= rtol * max(1.0, float(np.abs(want).max()))


def test_onnx_matches_torch_at_any_size(export_dir, torch_reward):
    runtime = OnnxR3MReward.load(export_dir, threads=1)
    assert runtime.name == torch_reward.name
    manifest = json.loads((export_dir / 'manifest.json').read_text())
    assert manifest['verification']['max_abs_diff']['reward'] <= 1e-4
    for frames in (images(3, 64, 64, seed=0), images(2, 72, 96, seed=1)):   # an export is not tied to one size
        assert close(runtime.embed_images(frames), torch_reward.embed_images(frames))
    lang_onnx, lang_torch = runtime.embed_instructions(INSTRUCTIONS), torch_reward.embed_instructions(INSTRUCTIONS)
    assert close(lang_onnx, lang_torch)
    e = torch_reward.embed_images(images(5, 64, 64, seed=2))
    for args in ((e[:1], e, lang_torch[:1]), (e, e[::-1], lang_torch[[0, 1, 0, 1, 0]]), (e[:1], e[3:4], lang_torch)):
        got, want = runtime.score(*args), torch_reward.score(*args)
        assert got.shape == want.shape and close(got, want, 1e-5)


def test_export_refuses_to_overwrite(export_dir, torch_reward):
    with pytest.raises(FileExistsError, match='overwrite'):
        export_onnx(torch_reward, export_dir)


def test_edited_file_is_refused(tmp_path, export_dir):
    copy = tmp_path / 'copy'
    copy.mkdir()
    for f in export_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / 'vocab.txt').write_text('[PAD]\n')
    with pytest.raises(OnnxExportInvalid, match='vocab.txt does not match its sha256'):
        OnnxR3MReward.load(copy)


def test_missing_export_says_how_to_make_it(tmp_path):
    with pytest.raises(WeightsMissing) as e:
        OnnxR3MReward.load(tmp_path / 'resnet50_onnx')
    message = str(e.value)
    assert 'lamp-models export-onnx --checkpoint' in message and str(tmp_path / 'resnet50_onnx') in message
    assert 'model.pt' in message and 'https://drive.google.com/uc?id=' in message


def test_cli_export_then_score_with_onnx(tmp_path, torch_reward, small_vocab, capsys):
    checkpoint = save_checkpoint(torch_reward.net, tmp_path / 'resnet18', small_vocab)
    out = tmp_path / 'resnet18_onnx'
    assert cli_main(['export-onnx', '--checkpoint', str(checkpoint), '--out', str(out), '--verify-size', '64']) == 0
    first, frame = images(2, 80, 80, seed=3)
    for name, image in (('first.png', first), ('frame.png', frame)):
        cv2.imwrite(str(tmp_path / name), image[:, :, ::-1])
    scores = []
    for model, path in (('r3m', checkpoint), ('r3m-onnx', out)):
        capsys.readouterr()
        assert cli_main(['score', '--model', model, '--checkpoint', str(path), '--first', str(tmp_path / 'first.png'),
                         '--frame', str(tmp_path / 'frame.png'), '--instruction', 'push the button']) == 0
        scores.append(float(capsys.readouterr().out.strip().splitlines()[-1].split()[0]))
    assert scores[0] == pytest.approx(scores[1], abs=1e-4)


def test_robot_side_imports_no_torch():
    code = ('import sys, models.r3m, models.r3m.runtime, models.r3m.fetch, models.r3m.layout; '
            'loaded = [m for m in ("torch", "torchvision", "transformers") if m in sys.modules]; '
            'assert not loaded, loaded')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True)
