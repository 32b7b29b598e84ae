"""Robot-side instruction tokenizer (numpy + `tokenizers` only, no torch or transformers).

Produces exactly the ids of `transformers.DistilBertTokenizerFast(vocab_file=...)` called with
padding='max_length', truncation=True: [CLS] wordpieces [SEP], then [PAD] up to max_length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import BertWordPieceTokenizer

PAD, UNK, CLS, SEP = '[PAD]', '[UNK]', '[CLS]', '[SEP]'


class InstructionTokenizer:
    """BERT WordPiece tokenizer with fixed-length output, what the text encoder ONNX graph takes."""

    def __init__(self, vocab_path: str | Path, max_length: int, lowercase: bool = True) -> None:
        vocab_path = Path(vocab_path)
        if not vocab_path.is_file():
            raise FileNotFoundError(f'{vocab_path}: no such vocabulary file')
        if max_length < 2:
            raise ValueError(f'max_length {max_length} leaves no room for [CLS] and [SEP]')
        self.max_length = int(max_length)
        self._tok = BertWordPieceTokenizer(str(vocab_path), lowercase=lowercase, unk_token=UNK,
                                           sep_token=SEP, cls_token=CLS, pad_token=PAD)
        missing = [t for t in (PAD, UNK, CLS, SEP) if self._tok.token_to_id(t) is None]
        if missing:
            raise ValueError(f'{vocab_path}: vocabulary lacks the special tokens {missing}')
        self._tok.enable_truncation(max_length=self.max_length)
        self._tok.enable_padding(length=self.max_length, pad_id=self._tok.token_to_id(PAD), pad_token=PAD)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size())

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """text -> (input_ids int64 [1,L], attention_mask int64 [1,L]) with L = max_length."""
        enc = self._tok.encode(text)
        ids = np.asarray(enc.ids, dtype=np.int64).reshape(1, self.max_length)
        mask = np.asarray(enc.attention_mask, dtype=np.int64).reshape(1, self.max_length)
        return ids, mask
