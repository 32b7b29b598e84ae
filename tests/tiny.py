"""Tiny real models for tests: the real architectures and the real exporter at toy sizes (no pretrained
weights exist on a test machine), and a vocabulary cut from the real BERT-uncased one."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.text_encoder import SentenceEncoder, default_vocab_path
from training.agent.config import AgentConfig
from training.export import export_bundle
from training.policy import PolicyNet

STATE_KEYS = ('ee_x', 'ee_y', 'ee_z', 'gripper_opening')
VOCAB_LINES = 6000           # the real vocabulary's first lines: specials, characters and common words
MAX_LEN = 16
EMB = 32


class FakeRecurrentPolicy(nn.Module):
    """A named fake: the smallest recurrent policy in the bundle's calling convention (a GRU cell over pooled
    pixels, state and instruction). The shipped policy is feed-forward; this exercises the bundle format's
    recurrent pairs and the runtime's state carrying."""

    recurrent = True

    def __init__(self, image_size: int, recurrent_dim: int) -> None:
        super().__init__()
        self.config = AgentConfig(image_size=image_size, state_dim=len(STATE_KEYS), embedding_dim=EMB,
                                  channels=(8,), strides=(2,))
        self.recurrent_dim = recurrent_dim
        self.gru = nn.GRUCell(3 + len(STATE_KEYS) + EMB, recurrent_dim)
        self.head = nn.Linear(recurrent_dim, 4)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, self.recurrent_dim)

    def forward(self, image: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = image.to(torch.float32).mean(dim=(1, 2)) / 255.0
        h_new = self.gru(torch.cat([pooled, state, instruction], dim=1), h)
        return torch.tanh(self.head(h_new)), h_new


def write_small_vocab(path: Path) -> Path:
    lines = default_vocab_path().read_text(encoding='utf-8').splitlines()[:VOCAB_LINES]
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return path


def tiny_config(image_size: int = 32, cameras: tuple[str, ...] = ('front',)) -> AgentConfig:
    return AgentConfig(image_size=image_size, state_dim=len(STATE_KEYS), embedding_dim=EMB, channels=(8, 16),
                       strides=(2, 2), feature_dim=16, hidden_dim=32, language_dim=8, cameras=cameras)


def tiny_models(image_size: int = 32, recurrent_dim: int = 0, seed: int = 0,
                cameras: tuple[str, ...] = ('front',)) -> tuple[nn.Module, SentenceEncoder]:
    torch.manual_seed(seed)
    policy = FakeRecurrentPolicy(image_size, recurrent_dim) if recurrent_dim else \
        PolicyNet(tiny_config(image_size, cameras))
    text = SentenceEncoder.random(n_layers=1, dim=EMB, n_heads=2, hidden_dim=64, vocab_size=VOCAB_LINES, seed=seed)
    return policy, text


def export_tiny(out: Path, vocab: Path, *, image_size: int = 32, recurrent_dim: int = 0, seed: int = 0,
                model_version: str | None = None, cameras: tuple[str, ...] = ('front',),
                **kwargs) -> tuple[nn.Module, SentenceEncoder]:
    policy, text = tiny_models(image_size, recurrent_dim, seed, cameras)
    export_bundle(policy, text, vocab, out, model_version=model_version or f'tiny-{seed}', state_keys=STATE_KEYS,
                  image_size=image_size, max_text_length=MAX_LEN, **kwargs)
    return policy, text
