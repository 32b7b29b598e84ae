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


def frames_at_size(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] frames resized to size x size (area when shrinking), the size a reward model was trained
    at; unchanged when size is 0 or already theirs. lamp-train's labels and a simulated robot's rewards both
    resize here, so they agree."""
    if not size or frames.shape[1:3] == (size, size):
        return frames
    import cv2
    interpolation = cv2.INTER_AREA if size < frames.shape[1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interpolation) for f in frames])


class WeightsMissing(FileNotFoundError):
    """Pretrained weights are not where they must be; the message says exactly which file to put where
    (and how to fetch it where the machine is online)."""


# --- input checks every reward model applies (no torch): bad input gets a clear error --------------------

def check_images(images: np.ndarray, min_side: int = 0) -> None:
    """uint8 [N, H, W, 3] RGB (at least min_side pixels high and wide), or ValueError saying what was given."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f'images must be a uint8 numpy array [N, H, W, 3] (RGB 0-255), got {got}')
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f'images must be uint8 [N, H, W, 3] RGB, got shape {images.shape}')
    if min(images.shape[1:3]) < min_side and images.shape[0]:
        raise ValueError(f'images of {images.shape[1]}x{images.shape[2]} are too small for this model '
                         f'(at least {min_side}x{min_side})')


def check_score_inputs(first: np.ndarray, current: np.ndarray, instruction: np.ndarray, image_dim: int,
                       lang_dim: int) -> int:
    """Validate precomputed embeddings for `score`; returns N, the row count after broadcasting single rows."""
    for name, array, dim in (('first', first, image_dim), ('current', current, image_dim),
                             ('instruction', instruction, lang_dim)):
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != dim:
            shape = array.shape if isinstance(array, np.ndarray) else type(array).__name__
            raise ValueError(f'{name} must be a 2-D array [N, {dim}] of precomputed embeddings, got {shape}')
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f'{name} must hold floats, got {array.dtype}')
    rows = {len(first), len(current), len(instruction)}
    if len(rows - {1}) > 1:
        raise ValueError(f'row counts must match or be 1 (broadcast): first {len(first)}, current {len(current)}, '
                         f'instruction {len(instruction)}')
    return max(rows) if 0 not in rows else 0
