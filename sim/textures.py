"""Surface textures drawn from image folders: one folder per surface (table, wall, floor).

Any .png/.jpg/.jpeg image works; it is centre-cropped to a square and resized once, then kept in
memory. The shipped folders hold small procedural textures (sim/default_assets.py); point the scene
config at photo folders (e.g. Ego4D frames) for realistic variety.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEFAULT_TEXTURE_DIR = Path(__file__).resolve().parent / 'assets' / 'textures'
SURFACES = ('table', 'wall', 'floor')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


class TextureFolder:
    def __init__(self, folder: Path, size_px: int) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f'texture folder {self.folder} does not exist')
        self.paths = tuple(sorted(p for p in self.folder.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES))
        if not self.paths:
            raise FileNotFoundError(f'no {"/".join(IMAGE_SUFFIXES)} images in texture folder {self.folder}')
        if size_px < 8:
            raise ValueError(f'texture size must be >= 8 pixels, got {size_px}')
        self.size_px = size_px
        self._images: dict[Path, np.ndarray] = {}

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A random image of the folder: (size, size, 3) uint8 RGB."""
        return self.image(self.paths[int(rng.integers(len(self.paths)))])

    def image(self, path: Path) -> np.ndarray:
        if path not in self._images:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'cannot read image {path}')
            height, width = bgr.shape[:2]
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            square = bgr[top:top + side, left:left + side]
            resized = cv2.resize(square, (self.size_px, self.size_px), interpolation=cv2.INTER_AREA)
            self._images[path] = np.ascontiguousarray(resized[:, :, ::-1])
        return self._images[path]
