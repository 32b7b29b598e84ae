"""Instruction embeddings computed once each: an operator retypes the same few instructions, and a text-encoder
pass costs time a node's loop would rather spend elsewhere. Bounded (an operator may type many): the least
recently used is forgotten first. Shared by the policy node, the reward node and the simulated robots."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

EMBEDDING_CACHE_SIZE = 64


class EmbeddingCache:
    def __init__(self, embed: Callable[[str], np.ndarray], size: int = EMBEDDING_CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError(f'an embedding cache holds at least 1 instruction, not {size}')
        self._embed, self._size = embed, size
        self._kept: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, text: str) -> np.ndarray:
        if text in self._kept:
            self._kept.move_to_end(text)
            return self._kept[text]
        return self.put(text, self._embed(text))

    def put(self, text: str, embedding: np.ndarray) -> np.ndarray:
        """Keep an embedding computed elsewhere (a new bundle's, computed while it loaded)."""
        self._kept[text] = embedding
        self._kept.move_to_end(text)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return embedding

    def __len__(self) -> int:
        return len(self._kept)
