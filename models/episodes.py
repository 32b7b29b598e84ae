"""Episode files: the one format the demo recorder, the replay and the reward finetuner share.

A directory of `*.npz` files (numpy, no pickles), one episode each, the file name (without .npz) its id:

    image_front  uint8 [T, H, W, 3]   RGB frames of the front camera (required)
    instruction  str, 0-d             what the episode does, in words (required)
    success      bool, 0-d            whether the task was accomplished (required)
    task         str, 0-d             optional: a label shared by instructions that mean the same task
                                      (paraphrases); trainers never use one as a negative of another
    image_wrist  uint8 [T, H, W, 3]   optional: wrist camera
    state        float32 [T, S]       optional: proprioceptive state per frame (sim: sim.STATE_KEYS)
    action       float32 [T-1|T, 4]   optional: action taken at frame t (dx, dy, dz, gripper)
    reward       float32 [T]          optional: task reward of the state each frame shows
    intervention bool [len(action)]   optional: True where the operator's action (teleop) replaced the policy's:
                                      a learner can treat those steps as demonstrations (needs `action`)
    meta         str, 0-d             optional: JSON object with provenance (the recorder's: docs/recording.md)

Files are written atomically (a reader sees a whole episode or none) and compressed; `iter_episodes` skips a
file it cannot read (torn copy, another format) with a warning that names it and the reason.
"""
from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator

import numpy as np

from lamp_ros.fileio import atomic_write_bytes

SUFFIX = '.npz'
REQUIRED = ('image_front', 'instruction', 'success')
OPTIONAL = ('task', 'image_wrist', 'state', 'action', 'reward', 'intervention', 'meta')
EPISODE_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}')


class EpisodeError(ValueError):
    """A file that is not a readable episode; the message names the file and what is wrong."""


class EpisodeSkipped(UserWarning):
    """iter_episodes left out a file it could not read."""


@dataclass(frozen=True)
class Episode:
    image_front: np.ndarray
    instruction: str
    success: bool
    task: str | None = None
    image_wrist: np.ndarray | None = None
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    reward: np.ndarray | None = None
    intervention: np.ndarray | None = None
    meta: str | None = None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise EpisodeError(problem)

    @property
    def length(self) -> int:
        return len(self.image_front)

    @property
    def label(self) -> str:
        """What groups equivalent instructions: the task when given, else the instruction itself."""
        return self.task if self.task else self.instruction


def _frames_problem(name: str, frames: object) -> str:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        return f'{name} must be uint8 [T, H, W, 3] RGB, got {_described(frames)}'
    if not len(frames):
        return f'{name} has no frames'
    return ''


def _problem(e: Episode) -> str:
    """The first thing wrong with the episode ('' if nothing), each part checked by its own rule in order."""
    problem = _frames_problem('image_front', e.image_front)
    if problem:
        return problem
    for check in (_text_problem, _wrist_problem, _arrays_problem, _intervention_problem, _meta_problem):
        problem = check(e, len(e.image_front))
        if problem:
            return problem
    return ''


def _text_problem(e: Episode, frames: int) -> str:
    if not isinstance(e.instruction, str) or not e.instruction.strip():
        return f'instruction must be a non-empty str, got {e.instruction!r}'
    if not isinstance(e.success, (bool, np.bool_)):
        return f'success must be a bool, got {type(e.success).__name__}'
    if e.task is not None and (not isinstance(e.task, str) or not e.task.strip()):
        return f'task must be a non-empty str or None, got {e.task!r}'
    return ''


def _wrist_problem(e: Episode, frames: int) -> str:
    if e.image_wrist is None:
        return ''
    problem = _frames_problem('image_wrist', e.image_wrist)
    if not problem and len(e.image_wrist) != frames:
        problem = f'image_wrist has {len(e.image_wrist)} frames, image_front {frames}'
    return problem


def _arrays_problem(e: Episode, frames: int) -> str:
    """state and reward: a row a frame; action: a row a step (one fewer) or a frame, 4 wide."""
    for name, array, lengths, width in (('state', e.state, (frames,), None),
                                        ('action', e.action, (frames - 1, frames), 4),
                                        ('reward', e.reward, (frames,), 0)):
        if array is None:
            continue
        ndim = 1 if width == 0 else 2
        if not isinstance(array, np.ndarray) or array.ndim != ndim or not np.issubdtype(array.dtype, np.floating):
            return f'{name} must be a float array with {ndim} dimensions, got {_described(array)}'
        if len(array) not in lengths or (width and array.shape[1] != width):
            return (f'{name} has shape {array.shape}; with {frames} frames expected '
                    f'{" or ".join(map(str, lengths))} rows' + (f' of {width}' if width else ''))
    return ''


def _intervention_problem(e: Episode, frames: int) -> str:
    flags = e.intervention
    if flags is None:
        return ''
    if e.action is None:
        return 'intervention flags need the actions they flag (action is missing)'
    if not isinstance(flags, np.ndarray) or flags.dtype != np.bool_ or flags.ndim != 1:
        return f'intervention must be a bool array with 1 dimension, got {_described(flags)}'
    if len(flags) != len(e.action):
        return f'intervention has {len(flags)} flags, action {len(e.action)} rows'
    return ''


def _meta_problem(e: Episode, frames: int) -> str:
    if e.meta is None:
        return ''
    if not isinstance(e.meta, str):
        return f'meta must be a JSON str or None, got {type(e.meta).__name__}'
    try:
        parsed = json.loads(e.meta)
    except ValueError as error:
        return f'meta is not JSON: {error}'
    return '' if isinstance(parsed, dict) else f'meta must be a JSON object, got {type(parsed).__name__}'


def _described(value: object) -> str:
    """An array's dtype and shape, or any other value's type: what a refusal says it got."""
    return f'{value.dtype} {value.shape}' if isinstance(value, np.ndarray) else type(value).__name__


def save_episode(path: str | Path, episode: Episode) -> Path:
    """Write one episode file (compressed npz, atomically); the name must end in .npz."""
    path = Path(path)
    if path.suffix != SUFFIX or not EPISODE_ID.fullmatch(path.stem):
        raise ValueError(f'{path}: episode files are <id>.npz, id of letters, digits and ._@+-')
    arrays: dict[str, np.ndarray] = {'image_front': np.ascontiguousarray(episode.image_front),
                                     'instruction': np.array(episode.instruction),
                                     'success': np.array(bool(episode.success))}
    if episode.task is not None:
        arrays['task'] = np.array(episode.task)
    if episode.meta is not None:
        arrays['meta'] = np.array(episode.meta)
    if episode.intervention is not None:
        arrays['intervention'] = np.ascontiguousarray(episode.intervention, dtype=np.bool_)
    for name in ('image_wrist', 'state', 'action', 'reward'):
        value = getattr(episode, name)
        if value is not None:
            arrays[name] = np.ascontiguousarray(value if name == 'image_wrist' else value.astype(np.float32))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_episode(path: str | Path) -> Episode:
    """Read one episode file; EpisodeError (naming the file and the problem) if it is not one."""
    path = Path(path)
    arrays = _scalars_unwrapped(path, _read_arrays(path))
    try:
        return Episode(**arrays)
    except EpisodeError as e:
        raise EpisodeError(f'{path}: {e}') from None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The file's episode arrays, no pickles; a torn or foreign file, or one lacking a required key, refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED if k not in data.files]
            if missing:
                raise EpisodeError(f'{path}: lacks {missing} (an episode needs {list(REQUIRED)})')
            return {k: data[k] for k in (*REQUIRED, *OPTIONAL) if k in data.files}
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        if isinstance(e, EpisodeError):
            raise
        raise EpisodeError(f'{path}: not a readable episode file (torn or another format): {e}') from e


def _scalars_unwrapped(path: Path, arrays: dict[str, np.ndarray]) -> dict:
    """The 0-d text and success arrays as str and bool, each checked for its dtype."""
    for key in ('instruction', 'task', 'success', 'meta'):
        if key in arrays and arrays[key].ndim != 0:
            raise EpisodeError(f'{path}: {key} must be a 0-d array, got shape {arrays[key].shape}')
    values: dict = dict(arrays)
    for key in ('instruction', 'task', 'meta'):
        if key in arrays:
            if arrays[key].dtype.kind != 'U':
                raise EpisodeError(f'{path}: {key} must be a str array, got {arrays[key].dtype}')
            values[key] = str(arrays[key])
    if arrays['success'].dtype != np.bool_:
        raise EpisodeError(f'{path}: success must be bool, got {arrays["success"].dtype}')
    values['success'] = bool(arrays['success'])
    return values


def episode_paths(directory: str | Path) -> list[Path]:
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f'{directory}: no such directory of episode files (*.npz)')
    return sorted(p for p in directory.iterdir() if p.suffix == SUFFIX and p.is_file())


def iter_episodes(directory: str | Path, skip: Collection[str] = ()) -> Iterator[tuple[str, Episode]]:
    """(episode id, episode) for each readable *.npz in `directory`, by name; others skipped with a warning.
    Ids in `skip` are not read at all (e.g. episodes a learner imported already)."""
    for path in episode_paths(directory):
        if path.stem in skip:
            continue
        if not EPISODE_ID.fullmatch(path.stem):
            warnings.warn(f'{path}: skipped: the file name is not an episode id (letters, digits, ._@+-)',
                          EpisodeSkipped, stacklevel=2)
            continue
        try:
            episode = load_episode(path)
        except EpisodeError as e:
            warnings.warn(f'skipped: {e}', EpisodeSkipped, stacklevel=2)
            continue
        yield path.stem, episode
