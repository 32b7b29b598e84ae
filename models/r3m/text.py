"""Instruction tokenization for R3M's DistilBERT, shared by the torch model and the ONNX runtime (no torch).

R3M's LangEncoder tokenizes with distilbert-base-uncased ([CLS] word pieces [SEP], lowercased) and never
truncates. We pad to a fixed length (what a fixed-shape ONNX graph takes) and average only over real tokens,
which gives the embedding R3M computes for the instruction on its own; an instruction longer than the fixed
length is an error, not silently cut.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from models.tokenize import InstructionTokenizer

DEFAULT_MAX_TOKENS = 64


class R3MTokenizer:
    """texts -> (input_ids int64 [N, L], attention_mask int64 [N, L]), L = max_tokens ([CLS] and [SEP] included)."""

    def __init__(self, vocab_path: str | Path, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        if max_tokens < 3:
            raise ValueError(f'max_tokens {max_tokens} leaves no room for a word between [CLS] and [SEP]')
        self.max_tokens = int(max_tokens)
        # One position more than we keep: a real token there means the instruction was too long.
        self._tokenizer = InstructionTokenizer(vocab_path, self.max_tokens + 1, lowercase=True)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.vocab_size

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f'instructions must be a list of str, got {texts!r}')
        ids = np.zeros((len(texts), self.max_tokens), np.int64)
        mask = np.zeros((len(texts), self.max_tokens), np.int64)
        for row, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f'instruction {row} is empty')
            text_ids, text_mask = self._tokenizer.encode(text)
            if text_mask[0, self.max_tokens]:
                raise ValueError(f'instruction {text[:60]!r}... has more than {self.max_tokens - 2} word pieces '
                                 f'(raise max_tokens, at most the DistilBERT position count)')
            ids[row], mask[row] = text_ids[0, :self.max_tokens], text_mask[0, :self.max_tokens]
        return ids, mask
