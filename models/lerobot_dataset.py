"""Episodes as a LeRobotDataset v3: the layout LeRobot (and HIL-SERL's LeRobot port) trains and visualizes from.

    ROOT/meta/info.json                                         fps, features (names, shapes, dtypes), totals
    ROOT/meta/tasks.parquet                                     instruction -> task_index
    ROOT/meta/episodes/chunk-000/file-000.parquet               one row per episode: length, where its rows and
                                                                videos are, per-episode stats, success, provenance
    ROOT/meta/stats.json                                        dataset stats (min max mean std count q01..q99)
    ROOT/data/chunk-CCC/file-FFF.parquet                        one row per step (one file per episode)
    ROOT/videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4 H.264 (yuv420p), one file per episode

One row per step t of an episode (an applied action): observation.images.* and observation.state are what the
policy saw before the action, `action` the action, next.reward the reward of the frame after it (a file without
rewards: 1 on the last step of a successful episode, else 0, HIL-SERL's sparse reward), next.done on the
episode's last step, next.truncated there too when the episode did not succeed (step limit, operator stop), and
complementary_info.is_intervention whether the operator drove that step (HIL-SERL's key). The instruction is the
episode's task. Frames after the last action are not rows (LeRobot keeps no final observation).

One file per episode (data and each camera's video) makes adding an episode an append: its files are written
first, then the metadata is rewritten atomically, so a reader or a crash sees the dataset with or without the
episode, never half of it. Needs pyarrow and PyAV; no torch and no lerobot package (the test loads the result
with lerobot's own LeRobotDataset).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_ros.contract import ACTION_KEYS
from lamp_ros.fileio import atomic_write_bytes, atomic_write_text
from models.episodes import Episode

CODEBASE_VERSION = 'v3.0'
CHUNK_SIZE = 1000                      # files per chunk directory (LeRobot's default)
VIDEO_CRF = 20                         # near-lossless for camera frames this small
VIDEO_GOP = 2                          # a key frame every 2 frames: random access, as LeRobot encodes
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
DEFAULT_FEATURES = {'timestamp': 'float32', 'frame_index': 'int64', 'episode_index': 'int64', 'index': 'int64',
                    'task_index': 'int64'}
EPISODES_FILE = 'meta/episodes/chunk-000/file-000.parquet'
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
CAMERAS = {'front': 'image_front', 'wrist': 'image_wrist'}   # camera name -> Episode field


class DatasetMismatch(ValueError):
    """An episode that does not fit the dataset's features (another camera size, fps, state width)."""


@dataclass(frozen=True)
class Steps:
    """One episode as LeRobot rows (see the module docstring)."""
    images: dict[str, np.ndarray]      # camera -> uint8 [n, H, W, 3]
    state: np.ndarray | None           # float32 [n, S]
    action: np.ndarray                 # float32 [n, 4]
    reward: np.ndarray                 # float32 [n]
    done: np.ndarray                   # bool [n]
    truncated: np.ndarray              # bool [n]
    intervention: np.ndarray           # bool [n]
    reward_missing: int                # steps whose next frame got no reward message (written as 0)

    @property
    def length(self) -> int:
        return len(self.action)


def episode_steps(episode: Episode) -> Steps:
    """The rows of one episode; DatasetMismatch if it has no actions (nothing to learn a policy from)."""
    if episode.action is None or not len(episode.action):
        raise DatasetMismatch('an episode without actions has no LeRobot rows')
    n, frames = len(episode.action), episode.length
    images = {cam: getattr(episode, field)[:n] for cam, field in CAMERAS.items()
              if getattr(episode, field) is not None}
    after = np.minimum(np.arange(n) + 1, frames - 1)          # the frame each action led to
    if episode.reward is not None:
        reward = episode.reward[after].astype(np.float32)
        missing = int(np.isnan(reward).sum())
        reward = np.nan_to_num(reward, nan=0.0)
    else:
        reward, missing = np.zeros(n, np.float32), 0
        reward[-1] = float(episode.success)
    last = np.arange(n) == n - 1
    intervention = episode.intervention if episode.intervention is not None else np.zeros(n, bool)
    return Steps(images, None if episode.state is None else episode.state[:n].astype(np.float32),
                 episode.action.astype(np.float32), reward, last, last & (not episode.success),
                 intervention.astype(bool), missing)


def features_for(steps: Steps, fps: int, state_names: list[str]) -> dict[str, dict[str, Any]]:
    """info.json's features for episodes shaped like `steps`."""
    features: dict[str, dict[str, Any]] = {}
    for cam, frames in steps.images.items():
        h, w = frames.shape[1:3]
        features[f'observation.images.{cam}'] = {
            'dtype': 'video', 'shape': [h, w, 3], 'names': ['height', 'width', 'channels'],
            'info': {'video.height': h, 'video.width': w, 'video.codec': 'h264', 'video.pix_fmt': 'yuv420p',
                     'video.is_depth_map': False, 'video.fps': fps, 'video.channels': 3, 'has_audio': False}}
    if steps.state is not None:
        features['observation.state'] = {'dtype': 'float32', 'shape': [steps.state.shape[1]], 'names': state_names}
    features['action'] = {'dtype': 'float32', 'shape': [len(ACTION_KEYS)], 'names': list(ACTION_KEYS)}
    features['next.reward'] = {'dtype': 'float32', 'shape': [1], 'names': None}
    features['next.done'] = {'dtype': 'bool', 'shape': [1], 'names': None}
    features['next.truncated'] = {'dtype': 'bool', 'shape': [1], 'names': None}
    features['complementary_info.is_intervention'] = {'dtype': 'bool', 'shape': [1], 'names': None}
    for name, dtype in DEFAULT_FEATURES.items():
        features[name] = {'dtype': dtype, 'shape': [1], 'names': None}
    return features


def state_names_of(episode: Episode) -> list[str]:
    """The state's names from the recorder's meta (state_keys), else state_0, state_1, ..."""
    width = 0 if episode.state is None else episode.state.shape[1]
    keys = json.loads(episode.meta).get('state_keys') if episode.meta else None
    return list(keys) if isinstance(keys, list) and len(keys) == width else [f'state_{i}' for i in range(width)]


class LeRobotWriter:
    """Appends episodes to a LeRobotDataset v3 at `root` (created, or continued where it was left)."""

    def __init__(self, root: Path, fps: int, robot_type: str = 'lamp_ros') -> None:
        self.root, self.fps, self.robot_type = Path(root), int(fps), robot_type
        if self.fps <= 0 or self.fps != fps:
            raise ValueError(f'fps must be a positive whole number (LeRobot stores an int), got {fps}')
        self.info: dict[str, Any] | None = None
        self.episodes: list[dict[str, Any]] = []
        self.tasks: list[str] = []
        if (self.root / 'meta/info.json').is_file():
            self._load()

    def _load(self) -> None:
        import pyarrow.parquet as pq
        self.info = json.loads((self.root / 'meta/info.json').read_text())
        if self.info.get('codebase_version') != CODEBASE_VERSION or self.info.get('fps') != self.fps:
            raise DatasetMismatch(f"{self.root} is a LeRobot dataset of version {self.info.get('codebase_version')} "
                                  f"at {self.info.get('fps')} fps; this writer adds {CODEBASE_VERSION} at {self.fps} fps")
        if (self.root / EPISODES_FILE).is_file():
            self.episodes = pq.read_table(self.root / EPISODES_FILE).to_pylist()
        if (self.root / 'meta/tasks.parquet').is_file():
            table = pq.read_table(self.root / 'meta/tasks.parquet').to_pydict()
            self.tasks = [t for _, t in sorted(zip(table['task_index'], table['task']))]

    def __len__(self) -> int:
        return len(self.episodes)

    def add(self, episode: Episode, extra: dict[str, Any] | None = None, replace: int | None = None) -> int:
        """Write one episode (or, with `replace`, write it over episode `replace`, of the same length: a relabel);
        returns its episode index. `extra`: JSON-able provenance kept in its episodes row (column lamp_meta)."""
        steps = episode_steps(episode)
        features = features_for(steps, self.fps, state_names_of(episode))
        if self.info is None:
            self.info = self._new_info(features)
        self._check_fits(features)
        index, start = self._slot(steps.length, replace)
        task_index = self._task_index(episode.instruction)
        chunk, file = divmod(index, CHUNK_SIZE)
        row: dict[str, Any] = {'episode_index': index, 'tasks': [episode.instruction], 'length': steps.length,
                               'data/chunk_index': chunk, 'data/file_index': file, 'dataset_from_index': start,
                               'dataset_to_index': start + steps.length,
                               'meta/episodes/chunk_index': 0, 'meta/episodes/file_index': 0}
        for cam, frames in steps.images.items():
            key = f'observation.images.{cam}'
            self._write_video(self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file), frames)
            row.update({f'videos/{key}/chunk_index': chunk, f'videos/{key}/file_index': file,
                        f'videos/{key}/from_timestamp': 0.0, f'videos/{key}/to_timestamp': steps.length / self.fps})
        self._write_data(self.root / DATA_PATH.format(chunk_index=chunk, file_index=file), steps, index, start,
                         task_index)
        stats = episode_stats(steps)
        row.update({f'stats/{feature}/{name}': np.asarray(value).tolist() for feature, values in stats.items()
                    for name, value in values.items()})
        row.update({'success': bool(episode.success), 'reward_missing_steps': steps.reward_missing,
                    'lamp_meta': json.dumps({**(json.loads(episode.meta) if episode.meta else {}), **(extra or {})})})
        if replace is None:
            self.episodes.append(row)
        else:
            self.episodes[replace] = row
        self._write_meta()
        return index

    def _slot(self, length: int, replace: int | None) -> tuple[int, int]:
        """(episode index, first dataset index) of a new episode, or of the same-length one it replaces."""
        if replace is None:
            return len(self.episodes), (self.episodes[-1]['dataset_to_index'] if self.episodes else 0)
        if not 0 <= replace < len(self.episodes):
            raise IndexError(f'no episode {replace} to replace (the dataset has {len(self.episodes)})')
        if self.episodes[replace]['length'] != length:
            raise DatasetMismatch(f'episode {replace} has {self.episodes[replace]["length"]} steps, its replacement '
                                  f'{length}: only a same-length rewrite (a relabel) keeps the indices')
        return replace, self.episodes[replace]['dataset_from_index']

    # --- files -----------------------------------------------------------------------------------------
    def _new_info(self, features: dict[str, dict[str, Any]]) -> dict[str, Any]:
        has_video = any(f['dtype'] == 'video' for f in features.values())
        return {'codebase_version': CODEBASE_VERSION, 'robot_type': self.robot_type, 'total_episodes': 0,
                'total_frames': 0, 'total_tasks': 0, 'chunks_size': CHUNK_SIZE, 'data_files_size_in_mb': 100,
                'video_files_size_in_mb': 200, 'fps': self.fps, 'splits': {}, 'data_path': DATA_PATH,
                'video_path': VIDEO_PATH if has_video else None, 'features': features}

    def _check_fits(self, features: dict[str, dict[str, Any]]) -> None:
        have = {k: (v['dtype'], list(v['shape'])) for k, v in self.info['features'].items()}
        got = {k: (v['dtype'], list(v['shape'])) for k, v in features.items()}
        if have != got:
            differ = sorted(k for k in set(have) | set(got) if have.get(k) != got.get(k))
            raise DatasetMismatch('the episode does not fit the dataset: ' + ', '.join(
                f'{k} is {got.get(k, "absent")} here, {have.get(k, "absent")} in the dataset' for k in differ))

    def _task_index(self, instruction: str) -> int:
        if instruction not in self.tasks:
            self.tasks.append(instruction)
        return self.tasks.index(instruction)

    def _write_data(self, path: Path, steps: Steps, episode_index: int, start: int, task_index: int) -> None:
        import pyarrow as pa
        n = steps.length
        columns: dict[str, Any] = {}
        if steps.state is not None:
            columns['observation.state'] = _fixed_list(steps.state)
        columns.update({
            'action': _fixed_list(steps.action), 'next.reward': pa.array(steps.reward, pa.float32()),
            'next.done': pa.array(steps.done), 'next.truncated': pa.array(steps.truncated),
            'complementary_info.is_intervention': pa.array(steps.intervention),
            'timestamp': pa.array(np.arange(n, dtype=np.float32) / np.float32(self.fps), pa.float32()),
            'frame_index': pa.array(np.arange(n), pa.int64()),
            'episode_index': pa.array(np.full(n, episode_index), pa.int64()),
            'index': pa.array(np.arange(start, start + n), pa.int64()),
            'task_index': pa.array(np.full(n, task_index), pa.int64())})
        _write_parquet(path, pa.table(columns))

    def _write_video(self, path: Path, frames: np.ndarray) -> None:
        """H.264 at the camera's own size, frame i at i / fps exactly (LeRobot looks frames up by timestamp)."""
        import av
        from fractions import Fraction
        h, w = frames.shape[1:3]
        if h % 2 or w % 2:
            raise DatasetMismatch(f'camera frames of {h}x{w}: H.264 (yuv420p) needs even sizes')
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.mp4', dir=path.parent)
        os.close(fd)
        try:
            with av.open(tmp, 'w', format='mp4') as container:
                stream = container.add_stream('libx264', rate=self.fps,
                                              options={'crf': str(VIDEO_CRF), 'g': str(VIDEO_GOP), 'bf': '0'})
                stream.height, stream.width, stream.pix_fmt = h, w, 'yuv420p'
                stream.time_base = Fraction(1, self.fps)
                for i, image in enumerate(frames):
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')
                    frame.pts, frame.time_base = i, Fraction(1, self.fps)
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _write_meta(self) -> None:
        import pyarrow as pa
        info = self.info
        info.update(total_episodes=len(self.episodes), total_frames=self.episodes[-1]['dataset_to_index'],
                    total_tasks=len(self.tasks), splits={'train': f'0:{len(self.episodes)}'})
        tasks = pa.table({'task_index': pa.array(range(len(self.tasks)), pa.int64()), 'task': self.tasks})
        tasks = tasks.replace_schema_metadata({b'pandas': json.dumps(_pandas_index_metadata()).encode()})
        _write_parquet(self.root / 'meta/tasks.parquet', tasks)
        _write_parquet(self.root / EPISODES_FILE, pa.Table.from_pylist(self.episodes))
        atomic_write_text(self.root / 'meta/stats.json', json.dumps(aggregate_stats(self.episodes), indent=1) + '\n')
        atomic_write_text(self.root / 'meta/info.json', json.dumps(info, indent=2) + '\n')   # last: the commit


# --- stats (LeRobot's layout: images per channel in [0, 1], shape [3, 1, 1]) --------------------------------------

def _basic_stats(values: np.ndarray, per_channel_image: bool = False) -> dict[str, np.ndarray]:
    """min max mean std count q01..q99 over the rows (images: over rows and pixels, per channel)."""
    data = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0 if per_channel_image else \
        values.reshape(len(values), -1).astype(np.float64)
    stats = {'min': data.min(0), 'max': data.max(0), 'mean': data.mean(0), 'std': data.std(0),
             'count': np.array([len(values)])}
    stats.update({f'q{round(q * 100):02d}': np.quantile(data, q, axis=0) for q in QUANTILES})
    if per_channel_image:
        stats = {k: (v if k == 'count' else v.reshape(3, 1, 1)) for k, v in stats.items()}
    return stats


def episode_stats(steps: Steps) -> dict[str, dict[str, np.ndarray]]:
    stats = {f'observation.images.{cam}': _basic_stats(frames, per_channel_image=True)
             for cam, frames in steps.images.items()}
    for name, values in (('observation.state', steps.state), ('action', steps.action),
                         ('next.reward', steps.reward), ('next.done', steps.done),
                         ('complementary_info.is_intervention', steps.intervention)):
        if values is not None:
            stats[name] = _basic_stats(np.asarray(values, np.float64).reshape(steps.length, -1))
    return stats


def aggregate_stats(episodes: list[dict[str, Any]]) -> dict[str, dict[str, list]]:
    """The dataset's stats from its episodes' (count-weighted mean and pooled variance, exact min and max;
    quantiles count-weighted averages of the episodes', LeRobot's approximation)."""
    features = sorted({key.split('/')[1] for key in episodes[0] if key.startswith('stats/')})
    out: dict[str, dict[str, list]] = {}
    for feature in features:
        get = lambda name: [np.asarray(e[f'stats/{feature}/{name}'], np.float64) for e in episodes]  # noqa: E731
        counts = np.array([c[0] for c in get('count')], np.float64)
        weights = (counts / counts.sum()).reshape(-1, *[1] * np.asarray(get('mean')[0]).ndim)
        mean = np.sum(weights * np.stack(get('mean')), axis=0)
        var = np.sum(weights * (np.stack(get('std')) ** 2 + (np.stack(get('mean')) - mean) ** 2), axis=0)
        out[feature] = {'min': np.min(np.stack(get('min')), 0).tolist(), 'max': np.max(np.stack(get('max')), 0).tolist(),
                        'mean': mean.tolist(), 'std': np.sqrt(var).tolist(), 'count': [int(counts.sum())]}
        for q in QUANTILES:
            name = f'q{round(q * 100):02d}'
            out[feature][name] = np.sum(weights * np.stack(get(name)), axis=0).tolist()
    return out


# --- parquet -------------------------------------------------------------------------------------------------

def _fixed_list(values: np.ndarray):
    """float32 [n, k] -> a fixed-size list column (what datasets' Sequence(length=k) reads)."""
    import pyarrow as pa
    flat = pa.array(np.ascontiguousarray(values, np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _write_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def _pandas_index_metadata() -> dict[str, Any]:
    """tasks.parquet is read with pandas as a frame indexed by the task string (LeRobot looks a task's text up as
    the index of its row); pyarrow writes that index from this metadata without pandas being installed."""
    column = lambda name, dtype, numpy: {'name': name, 'field_name': name, 'pandas_type': dtype,  # noqa: E731
                                         'numpy_type': numpy, 'metadata': None}
    return {'index_columns': ['task'], 'column_indexes': [],
            'columns': [column('task_index', 'int64', 'int64'), column('task', 'unicode', 'object')],
            'creator': {'library': 'pyarrow', 'version': '0'}, 'pandas_version': '2.0.0'}
