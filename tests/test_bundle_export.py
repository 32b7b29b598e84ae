"""Exporter (torch side): bundle layout, overwrite safety, verification failure, tokenizer parity, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import DistilBertTokenizerFast

from models.bundle import MANIFEST, POLICY_FILE, TEXT_ENCODER_FILE, read_manifest
from training.export import ExportError, export_bundle, main
from models.text_encoder import SentenceEncoder, default_vocab_path
from models.tokenize import InstructionTokenizer
from tests.tiny import MAX_LEN, STATE_KEYS, export_tiny, tiny_models



def test_export_writes_a_complete_verified_bundle(tmp_path: Path, small_vocab: Path) -> None:
    out = tmp_path / 'bundle'
    export_tiny(out, small_vocab, recurrent_dim=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bundle']           # no temporary leftovers
    manifest = read_manifest(out)
    assert set(manifest.files) == {POLICY_FILE, TEXT_ENCODER_FILE, 'tokenizer/vocab.txt'}
    assert manifest.image_size == (32, 32) and manifest.state_keys == STATE_KEYS
    assert manifest.embedding_dim == 32 and manifest.max_text_length == MAX_LEN
    assert [(r.input, r.output) for r in manifest.recurrent] == [('h_in', 'h_out')]
    assert {s.name: s.shape for s in manifest.policy_inputs}['h_in'] == (1, 8)
    assert (out / 'tokenizer' / 'vocab.txt').read_bytes() == small_vocab.read_bytes()


def test_export_refuses_to_overwrite(tmp_path: Path, small_vocab: Path) -> None:
    out = tmp_path / 'bundle'
    export_tiny(out, small_vocab, seed=0)
    before = (out / MANIFEST).read_text()
    with pytest.raises(FileExistsError, match='overwrite'):
        export_tiny(out, small_vocab, seed=1)
    assert (out / MANIFEST).read_text() == before
    export_tiny(out, small_vocab, seed=1, overwrite=True)
    assert read_manifest(out).model_version == 'tiny-1'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bundle']


def test_failed_verification_leaves_no_bundle(tmp_path: Path, small_vocab: Path) -> None:
    out = tmp_path / 'bundle'
    with pytest.raises(ExportError, match=r'action max abs diff .*embedding max abs diff'):
        export_tiny(out, small_vocab, atol=-1.0)   # no difference is <= -1: verification must fail
    assert list(tmp_path.iterdir()) == []


def test_export_rejects_inconsistent_arguments(tmp_path: Path, small_vocab: Path) -> None:
    policy, text = tiny_models()
    with pytest.raises(ValueError, match='embedding_dim 32 != text encoder dim 48'):
        export_bundle(policy, SentenceEncoder.random(n_layers=1, dim=48, n_heads=2, hidden_dim=64, vocab_size=6000),
                      small_vocab, tmp_path / 'b', model_version='x', state_keys=STATE_KEYS, image_size=32)
    with pytest.raises(ValueError, match='3 state_keys'):
        export_bundle(policy, text, small_vocab, tmp_path / 'b', model_version='x', state_keys=STATE_KEYS[:3],
                      image_size=32)
    assert list(tmp_path.iterdir()) == []


def test_masked_mean_ignores_padding() -> None:
    """R3M's embedding is the mean over the unpadded instruction; padding must not change it."""
    _, text = tiny_models()
    ids = torch.tensor([[101, 1996, 2000, 102]])
    padded_ids = torch.cat([ids, torch.zeros(1, 6, dtype=torch.int64)], dim=1)
    padded_mask = torch.cat([torch.ones(1, 4, dtype=torch.int64), torch.zeros(1, 6, dtype=torch.int64)], dim=1)
    with torch.inference_mode():
        plain = text(ids, torch.ones_like(ids))
        padded = text(padded_ids, padded_mask)
        r3m = text.bert(input_ids=ids).last_hidden_state.mean(dim=1)
    torch.testing.assert_close(padded, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain, r3m, atol=1e-5, rtol=0)


def test_sentence_encoder_from_pretrained_reads_a_local_directory(tmp_path: Path) -> None:
    _, text = tiny_models()
    text.bert.save_pretrained(tmp_path / 'distilbert')
    loaded = SentenceEncoder.from_pretrained(tmp_path / 'distilbert')
    ids = torch.tensor([[101, 1996, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    with torch.inference_mode():
        torch.testing.assert_close(loaded(ids, mask), text(ids, mask))
    with pytest.raises(FileNotFoundError, match='local weights only'):
        SentenceEncoder.from_pretrained(tmp_path / 'no-such-dir')


TEXTS = ['push the button', 'Pick up the RED block, then put it in the drawer!', "don't   touch\tthe cup...",
         'Café naïve résumé 東京 🤖', '', 'a ' * 40]


@pytest.mark.parametrize('vocab_kind', ['full', 'small'])
def test_tokenizer_matches_transformers(vocab_kind: str, small_vocab: Path) -> None:
    vocab = default_vocab_path() if vocab_kind == 'full' else small_vocab
    ours = InstructionTokenizer(vocab, MAX_LEN)
    # transformers 5 ignores `vocab_file=` (it silently builds a 5-token vocabulary); `vocab=` is the path argument.
    reference = DistilBertTokenizerFast(vocab=str(vocab))
    assert reference.vocab_size == ours.vocab_size == len(vocab.read_text(encoding='utf-8').splitlines())
    for text in TEXTS:
        ids, mask = ours.encode(text)
        want = reference(text, padding='max_length', truncation=True, max_length=MAX_LEN)
        assert ids.dtype == np.int64 and mask.dtype == np.int64 and ids.shape == mask.shape == (1, MAX_LEN)
        assert ids[0].tolist() == want['input_ids'], text
        assert mask[0].tolist() == want['attention_mask'], text


def test_lamp_export_help(capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(sys.executable).with_name('lamp-export')   # the console script of an installed checkout
    command = [str(script)] if script.exists() else [sys.executable, '-m', 'training.export']
    result = subprocess.run(command + ['--help'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage: lamp-export') and 'random' in result.stdout
    with pytest.raises(SystemExit) as exit_:
        main(['random', '--help'])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert all(flag in printed for flag in ('--out', '--image-size', '--text-layers', '--seed', '--overwrite'))


def test_cli_random_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'demo'
    assert main(['random', '--out', str(out), '--image-size', '32', '--text-layers', '1', '--seed', '3']) == 0
    printed = capsys.readouterr().out
    assert f'bundle written to {out.resolve()}' in printed and 'random-seed3' in printed
    manifest = read_manifest(out)
    assert manifest.embedding_dim == 768 and manifest.image_size == (32, 32)
    assert json.loads((out / MANIFEST).read_text())['model_version'] == 'random-seed3'
    with pytest.raises(FileExistsError):
        main(['random', '--out', str(out), '--image-size', '32', '--text-layers', '1'])


def test_the_paper_presets_policy_exports_and_runs_in_onnxruntime(tmp_path: Path, small_vocab: Path) -> None:
    """The paper preset's agent (128x128 front + wrist, DrQ-v2's encoder, 1024-wide heads) is a bundle: simulated
    robots and the policy node can run it (docs/scale.md's paper-scale fleet)."""
    from models.runtime import PolicyRuntime
    from sim import STATE_KEYS as SIM_STATE_KEYS
    from training.agent import DrQAgent
    from training.config import preset, replace
    agent_config = preset('paper').agent
    text = SentenceEncoder.random(n_layers=1, dim=24, n_heads=2, hidden_dim=32,
                                  vocab_size=len(small_vocab.read_text().splitlines()), seed=0)
    agent = DrQAgent(replace(agent_config, embedding_dim=text.dim), seed=0)
    export_bundle(agent.exportable_policy(), text, small_vocab, tmp_path / 'paper', model_version='paper',
                  state_keys=SIM_STATE_KEYS, image_size=128, max_text_length=MAX_LEN)
    runtime = PolicyRuntime.load(tmp_path / 'paper', threads=1)
    assert runtime.manifest.cameras == ('front', 'wrist') and runtime.manifest.image_size == (128, 128)
    rng = np.random.default_rng(0)
    image = lambda: rng.integers(0, 256, (128, 128, 3), np.uint8)                           # noqa: E731
    action = runtime.act(image(), np.zeros(len(SIM_STATE_KEYS), np.float32),
                         runtime.embed_instruction('push the button'), {'wrist': image()})
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)
