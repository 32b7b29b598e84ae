"""What a run shows its user: TensorBoard scalars (RUN/tb/), the evaluation history (RUN/evals.json), the
learning curve (RUN/learning_curve.png) and evaluation videos (RUN/videos/*.mp4), all rewritten atomically."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from lamp_ros.fileio import atomic_write_bytes, atomic_write_text


class TensorBoard:
    """Scalars only; the writer is created lazily so that commands which log nothing leave no event file."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._writer = None

    def scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(str(self.directory))
        for key, value in values.items():
            self._writer.add_scalar(f'{prefix}/{key}', float(value), step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_evals(path: Path, evals: Sequence[dict[str, Any]]) -> None:
    atomic_write_text(path, json.dumps(list(evals), indent=1) + '\n')


def plot_learning_curve(path: Path, evals: Sequence[dict[str, Any]], title: str) -> None:
    """Success rate and mean return of the evaluations against env steps (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    steps = [e['step'] for e in evals]
    fig, (ax_success, ax_return) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_success.plot(steps, [e['success_rate'] for e in evals], 'o-')
    ax_success.set(xlabel='env steps', ylabel='success rate', ylim=(-0.05, 1.05), title='evaluation success')
    ax_return.plot(steps, [e['mean_return'] for e in evals], 'o-', color='tab:orange')
    ax_return.set(xlabel='env steps', ylabel='mean return', title='evaluation return')
    for ax in (ax_success, ax_return):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """RGB uint8 frames -> mp4 (OpenCV's mp4v), via a temporary file renamed into place."""
    if not frames:
        raise ValueError('no frames to write')
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.mp4', dir=path.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f'OpenCV cannot write mp4 video to {tmp}')
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
