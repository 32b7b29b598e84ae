"""Tiny real models for tests: the real architectures and the real exporter at toy sizes (no pretrained
weights exist on a test machine), and a vocabulary cut from the real BERT-uncased one."""
from __future__ import annotations

from pathlib import Path

import torch

from models.export import export_bundle
from models.policy_net import PolicyNet, PolicyNetConfig
from models.text_encoder import SentenceEncoder, default_vocab_path

STATE_KEYS = ('ee_x', 'ee_y', 'ee_z', 'gripper_opening')
VOCAB_LINES = 6000           # the real vocabulary's first lines: specials, characters and common words
MAX_LEN = 16
EMB = 32


def write_small_vocab(path: Path) -> Path:
    lines = default_vocab_path().read_text(encoding='utf-8').splitlines()[:VOCAB_LINES]
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return path


def tiny_models(image_size: int = 32, recurrent_dim: int = 0, seed: int = 0) -> tuple[PolicyNet, SentenceEncoder]:
    torch.manual_seed(seed)
    policy = PolicyNet(PolicyNetConfig(image_size=image_size, state_dim=len(STATE_KEYS), embedding_dim=EMB,
                                       channels=(8, 16), hidden=32, recurrent_dim=recurrent_dim))
    text = SentenceEncoder.random(n_layers=1, dim=EMB, n_heads=2, hidden_dim=64, vocab_size=VOCAB_LINES, seed=seed)
    return policy, text


def export_tiny(out: Path, vocab: Path, *, image_size: int = 32, recurrent_dim: int = 0, seed: int = 0,
                model_version: str | None = None, **kwargs) -> tuple[PolicyNet, SentenceEncoder]:
    policy, text = tiny_models(image_size, recurrent_dim, seed)
    export_bundle(policy, text, vocab, out, model_version=model_version or f'tiny-{seed}', state_keys=STATE_KEYS,
                  image_size=image_size, max_text_length=MAX_LEN, **kwargs)
    return policy, text
