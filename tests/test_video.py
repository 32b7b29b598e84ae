"""Videos people can open: H.264 MP4 (checked by decoding it), sized for people from the agent's small frames,
no temporary file left behind; the TensorBoard GIF is an animated image summary."""
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lamp_ros.video import MIN_SIDE, for_people, gif_bytes, write_video
from training.runlog import TensorBoard


def frames(n: int, height: int, width: int) -> list[np.ndarray]:
    return [np.full((height, width, 3), 10 * i, np.uint8) for i in range(n)]


def decoded(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, [f.to_ndarray(format='rgb24') for f in container.decode(stream)]


def test_small_frames_become_an_h264_video_people_can_watch(tmp_path: Path) -> None:
    path = tmp_path / 'videos' / 'eval.mp4'
    write_video(path, frames(12, 64, 128), fps=10.0)
    codec, images = decoded(path)
    assert codec == 'h264' and len(images) == 12
    assert images[0].shape == (MIN_SIDE, 2 * MIN_SIDE, 3), 'enlarged by a whole factor to the minimum side'
    assert abs(int(images[5].mean()) - 50) <= 3, 'the content survives encoding'
    assert [p.name for p in path.parent.iterdir()] == ['eval.mp4'], 'no temporary file left'


def test_odd_sizes_are_padded_for_the_encoder_and_nothing_is_written_without_frames(tmp_path: Path) -> None:
    assert for_people(np.zeros((257, 301, 3), np.uint8)).shape == (258, 302, 3)
    write_video(tmp_path / 'odd.mp4', frames(3, 257, 301), fps=10.0)
    assert decoded(tmp_path / 'odd.mp4')[1][0].shape == (258, 302, 3)
    with pytest.raises(ValueError, match='no frames'):
        write_video(tmp_path / 'none.mp4', [], fps=10.0)
    assert not (tmp_path / 'none.mp4').exists()


def test_tensorboard_gets_an_animated_gif(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    gif = Image.open(__import__('io').BytesIO(gif_bytes(frames(6, 256, 768), fps=10.0)))
    assert gif.n_frames == 6 and max(gif.size) <= 256
    board = TensorBoard(tmp_path / 'tb')
    board.video(100, 'eval/video', frames(6, 64, 64), fps=10.0)
    board.close()
    events = EventAccumulator(str(tmp_path / 'tb'))
    events.Reload()
    assert events.Tags()['images'] == ['eval/video'] and events.Images('eval/video')[0].step == 100
