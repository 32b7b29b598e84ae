"""What a run shows its user: TensorBoard scalars (RUN/tb/), the evaluation history (RUN/evals.json), the
learning curve (RUN/learning_curve.png) and evaluation videos (RUN/videos/*.mp4), all rewritten atomically."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lamp_ros.fileio import atomic_write_bytes, atomic_write_text


class TensorBoard:
    """Scalars and videos; the writer is created lazily so that commands which log nothing leave no event file."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._writer = None

    def scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        self._open()
        for key, value in values.items():
            self._writer.add_scalar(f'{prefix}/{key}', float(value), step)

    def video(self, step: int, tag: str, frames: Sequence[np.ndarray], fps: float) -> None:
        """An animated GIF in the Images dashboard (as torch's add_video writes it, without moviepy)."""
        from tensorboard.compat.proto.summary_pb2 import Summary
        from lamp_ros.video import gif_bytes
        height, width = frames[0].shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
        self._open().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def _open(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(str(self.directory))
        return self._writer._get_file_writer()

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


