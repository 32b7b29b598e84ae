"""Input checks shared by the torch and ONNX R3M reward models (no torch): bad input gets a clear error."""
from __future__ import annotations

import numpy as np


def check_images(images: np.ndarray) -> None:
    """uint8 [N, H, W, 3] RGB, or ValueError saying what was given."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f'images must be a uint8 numpy array [N, H, W, 3] (RGB 0-255), got {got}')
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f'images must be uint8 [N, H, W, 3] RGB, got shape {images.shape}')
    if min(images.shape[1:3]) < 32 and images.shape[0]:
        raise ValueError(f'images of {images.shape[1]}x{images.shape[2]} are too small for a ResNet (at least 32x32)')


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
