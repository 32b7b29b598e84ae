"""Robot-side runtime: torch parity, recurrent state, input validation, bundle rejection, no torch imported."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import DistilBertTokenizerFast

from models.bundle import MANIFEST, POLICY_FILE, BundleError, read_manifest, write_manifest
from torch import nn
from models.runtime import PolicyRuntime
from models.text_encoder import SentenceEncoder
from tests.tiny import EMB, MAX_LEN, STATE_KEYS, export_tiny

SIZE = 32
ATOL = 1e-4
INSTRUCTIONS = ['push the button', 'Pick up the RED block and put it in the top drawer, please.', 'open it ' * 12]


class Exported:
    def __init__(self, root: Path, policy: nn.Module, text: SentenceEncoder, vocab: Path) -> None:
        self.root, self.policy, self.text, self.vocab = root, policy, text, vocab


def _export(root: Path, vocab: Path, recurrent_dim: int) -> Exported:
    policy, text = export_tiny(root, vocab, image_size=SIZE, recurrent_dim=recurrent_dim, seed=1,
                               model_version='test')
    return Exported(root, policy, text, vocab)


@pytest.fixture(scope='module')
def vocab(small_vocab: Path) -> Path:
    return small_vocab


@pytest.fixture(scope='module')
def bundle(tmp_path_factory: pytest.TempPathFactory, vocab: Path) -> Exported:
    return _export(tmp_path_factory.mktemp('ff') / 'bundle', vocab, recurrent_dim=0)


@pytest.fixture(scope='module')
def recurrent_bundle(tmp_path_factory: pytest.TempPathFactory, vocab: Path) -> Exported:
    return _export(tmp_path_factory.mktemp('rec') / 'bundle', vocab, recurrent_dim=8)


def _observation(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
            rng.normal(size=len(STATE_KEYS)).astype(np.float32),
            rng.normal(size=EMB).astype(np.float32))


def _torch_inputs(image: np.ndarray, state: np.ndarray, emb: np.ndarray) -> tuple[torch.Tensor, ...]:
    return torch.from_numpy(image[None]), torch.from_numpy(state[None]), torch.from_numpy(emb[None])


# --- parity with torch -------------------------------------------------------------------------------

def test_actions_match_torch(bundle: Exported) -> None:
    runtime = PolicyRuntime.load(bundle.root)
    assert runtime.manifest.model_version == 'test' and runtime.recurrent_state == {}
    rng = np.random.default_rng(7)
    for _ in range(5):
        obs = _observation(rng)
        action = runtime.act(*obs)
        with torch.inference_mode():
            want = bundle.policy(*_torch_inputs(*obs))[0].numpy()
        assert action.dtype == np.float32 and action.shape == (4,)
        np.testing.assert_allclose(action, want, atol=ATOL, rtol=0)
    assert np.all(np.abs(action) <= 1.0)


def test_a_wrist_camera_bundle_takes_the_wrist_image_and_matches_torch(tmp_path: Path, vocab: Path) -> None:
    policy, _ = export_tiny(tmp_path / 'wrist', vocab, image_size=SIZE, seed=2, cameras=('front', 'wrist'))
    runtime = PolicyRuntime.load(tmp_path / 'wrist')
    assert runtime.manifest.cameras == ('front', 'wrist')
    rng = np.random.default_rng(3)
    for _ in range(3):
        obs = _observation(rng)
        wrist = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        action = runtime.act(*obs, {'wrist': wrist})
        with torch.inference_mode():
            want = policy(*_torch_inputs(*obs), torch.from_numpy(wrist[None]))[0].numpy()
        np.testing.assert_allclose(action, want, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match=r"cameras \['front', 'wrist'\]: more_images must hold \['wrist'\]"):
        runtime.act(*obs)
    with pytest.raises(ValueError, match='wrist image must be uint8'):
        runtime.act(*obs, {'wrist': np.zeros((SIZE, SIZE, 3), np.float32)})


def test_a_bundle_manifest_without_cameras_sees_the_front_camera(bundle: Exported, tmp_path: Path) -> None:
    """Bundles written before the wrist camera existed (no observation.cameras) still load, front only."""
    copy = tmp_path / 'old'
    shutil.copytree(bundle.root, copy)
    data = json.loads((copy / MANIFEST).read_text())
    del data['observation']['cameras']
    (copy / MANIFEST).write_text(json.dumps(data))
    assert read_manifest(copy).cameras == ('front',)


def test_returned_action_is_not_overwritten_by_the_next_step(bundle: Exported) -> None:
    runtime = PolicyRuntime.load(bundle.root)
    rng = np.random.default_rng(0)
    first = runtime.act(*_observation(rng))
    kept = first.copy()
    runtime.act(*_observation(rng))
    np.testing.assert_array_equal(first, kept)


def test_embeddings_match_torch(bundle: Exported) -> None:
    runtime = PolicyRuntime.load(bundle.root)
    reference_tokenizer = DistilBertTokenizerFast(vocab=str(bundle.vocab))
    for text in INSTRUCTIONS:
        embedding = runtime.embed_instruction(text)
        tok = reference_tokenizer(text, padding='max_length', truncation=True, max_length=MAX_LEN, return_tensors='pt')
        with torch.inference_mode():
            want = bundle.text(tok['input_ids'], tok['attention_mask'])[0].numpy()
        assert embedding.dtype == np.float32 and embedding.shape == (EMB,)
        np.testing.assert_allclose(embedding, want, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match='empty'):
        runtime.embed_instruction('  ')


def test_recurrent_state_is_carried_and_reset(recurrent_bundle: Exported) -> None:
    runtime = PolicyRuntime.load(recurrent_bundle.root)
    net = recurrent_bundle.policy
    np.testing.assert_array_equal(runtime.recurrent_state['h_in'], np.zeros(8, np.float32))
    rng = np.random.default_rng(3)
    episode = [_observation(rng) for _ in range(4)]
    h = net.initial_state()
    first_actions = []
    for obs in episode:
        action = runtime.act(*obs)
        with torch.inference_mode():
            want, h = net(*_torch_inputs(*obs), h)
        np.testing.assert_allclose(action, want[0].numpy(), atol=ATOL, rtol=0)
        np.testing.assert_allclose(runtime.recurrent_state['h_in'], h[0].numpy(), atol=ATOL, rtol=0)
        first_actions.append(action)
    assert np.abs(runtime.recurrent_state['h_in']).max() > 0
    # The same observation gives a different action once the state has moved on ...
    assert not np.allclose(runtime.act(*episode[0]), first_actions[0], atol=1e-6)
    # ... and the first action again after a reset.
    runtime.reset()
    np.testing.assert_array_equal(runtime.recurrent_state['h_in'], np.zeros(8, np.float32))
    np.testing.assert_allclose(runtime.act(*episode[0]), first_actions[0], atol=1e-6, rtol=0)


# --- input validation ---------------------------------------------------------------------------------

def test_act_rejects_wrong_shapes_and_dtypes(bundle: Exported) -> None:
    runtime = PolicyRuntime.load(bundle.root)
    image, state, emb = _observation(np.random.default_rng(0))
    bad_calls = {
        'image must be uint8 \\[32, 32, 3\\], got uint8 \\[32, 32, 4\\]': (np.zeros((SIZE, SIZE, 4), np.uint8), state, emb),
        'image must be uint8 .* got uint8 \\[1, 32, 32, 3\\]': (image[None], state, emb),
        'image must be uint8 .* got float32': (image.astype(np.float32), state, emb),
        'image must be a numpy array': (image.tolist(), state, emb),
        'state must be float32 \\[4\\], got float32 \\[3\\]': (image, state[:3], emb),
        'state must be float32 \\[4\\], got float64': (image, state.astype(np.float64), emb),
        'instruction_embedding must be float32 \\[32\\]': (image, state, np.zeros(768, np.float32)),
        'state has non-finite values': (image, np.full(4, np.nan, np.float32), emb),
    }
    for pattern, args in bad_calls.items():
        with pytest.raises(ValueError, match=pattern):
            runtime.act(*args)


# --- bundles that must be refused --------------------------------------------------------------------

def _copy(bundle: Exported, tmp_path: Path) -> Path:
    root = tmp_path / 'bundle'
    shutil.copytree(bundle.root, root)
    return root


def _edit_manifest(root: Path, edit) -> None:
    data = json.loads((root / MANIFEST).read_text())
    edit(data)
    (root / MANIFEST).write_text(json.dumps(data))


def test_refuses_wrong_contract_version(bundle: Exported, tmp_path: Path) -> None:
    root = _copy(bundle, tmp_path)
    _edit_manifest(root, lambda d: d.update(contract_version=99))
    with pytest.raises(BundleError, match='contract_version 99 is not supported'):
        PolicyRuntime.load(root)


def test_refuses_missing_file(bundle: Exported, tmp_path: Path) -> None:
    root = _copy(bundle, tmp_path)
    (root / 'tokenizer' / 'vocab.txt').unlink()
    with pytest.raises(BundleError, match=r"missing files \['tokenizer/vocab.txt'\]"):
        PolicyRuntime.load(root)


def test_refuses_changed_file(bundle: Exported, tmp_path: Path) -> None:
    root = _copy(bundle, tmp_path)
    with open(root / POLICY_FILE, 'ab') as f:
        f.write(b'\0')
    with pytest.raises(BundleError, match='policy.onnx does not match its sha256'):
        PolicyRuntime.load(root)


def test_refuses_manifest_shape_that_disagrees_with_the_model(bundle: Exported, tmp_path: Path) -> None:
    root = _copy(bundle, tmp_path)

    def five_state_keys(d: dict) -> None:   # self-consistent manifest, but the ONNX model takes 4 values
        d['observation']['state_keys'].append('ee_qw')
        next(s for s in d['policy']['inputs'] if s['name'] == 'state')['shape'] = [1, 5]
    _edit_manifest(root, five_state_keys)
    with pytest.raises(BundleError, match=r"policy.onnx: input 'state': ONNX shape \[1, 4\], manifest says \[1, 5\]"):
        PolicyRuntime.load(root)


def test_refuses_model_with_renamed_input(bundle: Exported, tmp_path: Path) -> None:
    root = _copy(bundle, tmp_path)
    model = onnx.load(str(root / POLICY_FILE))
    for value in model.graph.input:
        if value.name == 'state':
            value.name = 'robot_state'
    for node in model.graph.node:
        node.input[:] = ['robot_state' if name == 'state' else name for name in node.input]
    onnx.save(model, str(root / POLICY_FILE))
    write_manifest(root, read_manifest(root, verify_files=False))   # hashes match: only the signature is wrong
    with pytest.raises(BundleError) as err:
        PolicyRuntime.load(root)
    assert "input 'state' is declared in the manifest but the ONNX model has no such input" in str(err.value)
    assert "the ONNX model has input 'robot_state', which the manifest does not declare" in str(err.value)


def test_refuses_unloadable_model(bundle: Exported, tmp_path: Path) -> None:
    root = _copy(bundle, tmp_path)
    (root / POLICY_FILE).write_bytes(b'not an onnx model')
    write_manifest(root, read_manifest(root, verify_files=False))
    with pytest.raises(BundleError, match='policy.onnx: onnxruntime cannot load it'):
        PolicyRuntime.load(root)


# --- the robot side imports no torch ----------------------------------------------------------------

def test_runtime_import_chain_has_no_torch(bundle: Exported) -> None:
    code = f"""
import sys
import numpy as np
from models.runtime import PolicyRuntime
rt = PolicyRuntime.load({str(bundle.root)!r})
emb = rt.embed_instruction('push the button')
rt.act(np.zeros(({SIZE}, {SIZE}, 3), np.uint8), np.zeros({len(STATE_KEYS)}, np.float32), emb)
heavy = sorted(m for m in ('torch', 'transformers', 'onnx') if m in sys.modules)
assert not heavy, heavy
print('ok')
"""
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'


@pytest.mark.parametrize('cameras', [['front', 'side'], ['wrist'], ['front', 'front']])
def test_a_manifest_naming_unknown_or_misordered_cameras_is_refused(bundle: Exported, tmp_path: Path,
                                                                     cameras: list[str]) -> None:
    copy = tmp_path / 'bad'
    shutil.copytree(bundle.root, copy)
    data = json.loads((copy / MANIFEST).read_text())
    data['observation']['cameras'] = cameras
    (copy / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match='must be distinct, start with front'):
        read_manifest(copy)
