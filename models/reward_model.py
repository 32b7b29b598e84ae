"""The interface every video-language reward model implements (R3M, CLIP/ZeST, ...), so the reward node,
relabeling and training take any of them.

Embeddings are computed once per frame and once per instruction; `score` is the cheap part that runs for
every (first frame, frame, instruction) triple, which is what makes relabeling many instructions fast.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class RewardModel(Protocol):
    name: str

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB frames (any H, W the model accepts) -> float32 [N, D_img]."""

    def embed_instructions(self, instructions: list[str]) -> np.ndarray:
        """N instructions -> float32 [N, D_lang]."""

    def score(self, first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
        """Batched reward from precomputed embeddings: first [N, D_img], current [N, D_img],
        instruction [N, D_lang] -> float32 [N]. Rows broadcast (a single first frame or instruction row
        applies to all)."""


class WeightsMissing(FileNotFoundError):
    """Pretrained weights are not where they must be; the message says exactly which file to put where
    (and how to fetch it where the machine is online)."""
