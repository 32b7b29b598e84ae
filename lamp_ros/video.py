"""Videos people can open: H.264 MP4 (yuv420p, what browsers, VS Code and every player decode), written with
PyAV's libx264 to a temporary file renamed into place (a reader never sees half a video). Frames smaller than
`min_side` are enlarged (nearest pixel: the agent's 64x64 stays crisp, not blurred); libx264 needs even sizes.
Also an animated GIF of the same frames for TensorBoard's image dashboard (what torch's add_video writes)."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

MIN_SIDE = 256
CRF = 20                  # visually near-lossless for rendered scenes, a few hundred kB a minute


def for_people(frame: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """`frame` enlarged by a whole factor until its short side is >= min_side, then padded to even sizes."""
    factor = max(1, -(-min_side // min(frame.shape[:2])))
    big = np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1) if factor > 1 else frame
    pad_h, pad_w = big.shape[0] % 2, big.shape[1] % 2
    return np.pad(big, ((0, pad_h), (0, pad_w), (0, 0))) if pad_h or pad_w else big


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float, min_side: int = MIN_SIDE) -> None:
    """RGB uint8 frames (all one size) -> H.264 MP4 at `path`."""
    import av
    if not len(frames):
        raise ValueError('no frames to write')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.mp4', dir=path.parent)
    os.close(fd)
    try:
        first = for_people(np.asarray(frames[0], np.uint8), min_side)
        with av.open(tmp, 'w', format='mp4') as container:
            stream = container.add_stream('libx264', rate=round(fps), options={'crf': str(CRF)})
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = 'yuv420p'
            for frame in frames:
                image = for_people(np.asarray(frame, np.uint8), min_side)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format='rgb24')))
            container.mux(stream.encode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def gif_bytes(frames: Sequence[np.ndarray], fps: float, max_side: int = 256) -> bytes:
    """An animated GIF of the frames, shrunk to at most `max_side` pixels on the long side (event files stay small)."""
    from PIL import Image
    step = max(1, -(-max(frames[0].shape[:2]) // max_side))
    images = [Image.fromarray(np.ascontiguousarray(f[::step, ::step])) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format='GIF', save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return out.getvalue()
