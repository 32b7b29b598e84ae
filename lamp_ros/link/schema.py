"""What a robot may send the learner, checked before anything is stored or acknowledged.

A robot first says hello: its id (the connection's identity), the state fields it records, its action size
and the reward source it pairs steps with. Every chunk after that is checked against that hello: its ids
(the episode key starts with the robot id, so one robot cannot write into another's episodes), its meta
fields and their types, and every array's dtype and shape (the chunk format of lamp_ros/core/transitions.py):

    image_front uint8 [n, H, W, 3]   image_stamp float64 [n]   state float32 [n, S]   action float32 [n, A]
    reward float32 [n] (NaN: missing)   intervention bool [n]   last chunk only: final_image uint8 [1, H, W, 3],
    final_state float32 [1, S]        a label update: no arrays, meta label_update {label, success}
    each further camera of the hello (e.g. wrist): image_<camera> uint8 [n, H', W', 3], last chunk
    final_image_<camera> uint8 [1, H', W', 3]

A chunk that passes here is one the learner can store and later turn into replay data without an exception:
the store then only checks that it fits the chunks already stored for its episode.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamp_ros.contract import CAMERA_TOPICS, CONTRACT_VERSION
from lamp_ros.core.transitions import FRONT, final_image_key, image_key
from lamp_ros.link.refusal import BAD_CHUNK, BAD_HELLO, MALFORMED, Refused

ID = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}')
MAX_TEXT = 2000
MAX_EPISODE_STEPS = 1_000_000
IMAGE_SIDES = (8, 4096)
STEP_ARRAYS = {'image_front': 'uint8', 'image_stamp': 'float64', 'state': 'float32', 'action': 'float32',
               'reward': 'float32', 'intervention': 'bool'}
FINAL_ARRAYS = {'final_image': 'uint8', 'final_state': 'float32'}


@dataclass(frozen=True)
class Hello:
    robot_id: str
    state_keys: tuple[str, ...]
    action_dim: int
    reward_source: str = ''         # '' : not announced
    cameras: tuple[str, ...] = (FRONT,)     # the images each step carries, front first
    contract_version: int = CONTRACT_VERSION  # the topics' and chunks' layout the robot speaks (contract.py)
    sim_version: str = ''           # a simulated robot's simulator (sim.SIM_VERSION); '' : a real robot

    def meta(self) -> dict[str, Any]:
        return {'robot_id': self.robot_id, 'state_keys': list(self.state_keys), 'action_dim': self.action_dim,
                'reward_source': self.reward_source, 'cameras': list(self.cameras),
                'contract_version': self.contract_version, 'sim_version': self.sim_version}

    @property
    def more_cameras(self) -> tuple[str, ...]:
        return self.cameras[1:]


def check_hello(meta: dict, peer: str, state_keys: tuple[str, ...], action_dim: int) -> Hello:
    robot_id, keys, dim, source = (meta.get(k) for k in ('robot_id', 'state_keys', 'action_dim', 'reward_source'))
    _require(_is_id(robot_id), BAD_HELLO, f'robot_id {_show(robot_id)} is not an id ({ID.pattern})')
    _require(robot_id == peer, BAD_HELLO, f'the hello names robot {robot_id!r}, the connection is {peer!r}')
    _require(isinstance(keys, list) and tuple(keys) == tuple(state_keys), BAD_HELLO,
             f'state fields {_show(keys)}, this learner takes {list(state_keys)}')
    _require(_is_int(dim, action_dim, action_dim), BAD_HELLO, f'action size {_show(dim)}, this learner takes {action_dim}')
    _require(source is None or source == '' or _is_id(source), BAD_HELLO, f'reward_source {_show(source)} is not a name')
    contract, sim_version = meta.get('contract_version', 1), meta.get('sim_version', '')   # older robots: 1, real
    _require(contract == CONTRACT_VERSION, BAD_HELLO, f'the robot speaks contract version {_show(contract)}, this '
             f'learner {CONTRACT_VERSION}: update lamp_ros on one of them')
    _require(sim_version == '' or _is_id(sim_version), BAD_HELLO, f'sim_version {_show(sim_version)} is not a name')
    cameras = meta.get('cameras', [FRONT])                 # robots from before cameras were announced: front only
    _require(isinstance(cameras, list) and cameras[:1] == [FRONT] and len(set(cameras)) == len(cameras)
             and all(cam in CAMERA_TOPICS for cam in cameras), BAD_HELLO,
             f'cameras {_show(cameras)}: expected distinct names of {sorted(CAMERA_TOPICS)}, front first')
    return Hello(robot_id, tuple(keys), dim, source or '', tuple(cameras), contract, sim_version)


def check_chunk(meta: dict, arrays: dict[str, np.ndarray], hello: Hello, max_steps: int) -> str:
    """The chunk's id, if the chunk is one `hello`'s robot can send; else Refused (bad_chunk, permanent)."""
    chunk_id, episode = meta.get('chunk_id'), meta.get('episode')
    _require(_is_id(chunk_id), BAD_CHUNK, f'chunk_id {_show(chunk_id)} is not an id')
    _require(meta.get('robot_id') == hello.robot_id, BAD_CHUNK,
             f'chunk {chunk_id} names robot {_show(meta.get("robot_id"))}, its hello {hello.robot_id!r}')
    _require(_is_id(episode) and episode.startswith(f'{hello.robot_id}-'), BAD_CHUNK,
             f'chunk {chunk_id}: episode {_show(episode)} is not an id starting with "{hello.robot_id}-"')
    if 'label_update' in meta:
        _check_label_update(chunk_id, meta['label_update'], arrays)
        return chunk_id
    last = _check_step_meta(chunk_id, meta)
    n = _check_arrays(chunk_id, arrays, hello, last is not None, max_steps)
    end = meta['first_step'] + n
    _require(end <= MAX_EPISODE_STEPS, BAD_CHUNK, f'chunk {chunk_id} ends at step {end} (> {MAX_EPISODE_STEPS})')
    _require(last is None or last['steps'] == end, BAD_CHUNK,
             f'chunk {chunk_id} ends the episode at step {end}, its meta says {_show(last and last["steps"])} steps')
    _require(last is not None or n > 0, BAD_CHUNK, f'chunk {chunk_id} has no steps and does not end its episode')
    return chunk_id


def check_bundle_ack(meta: dict) -> tuple[str, bool, str]:
    version, stored, reason = meta.get('version'), meta.get('stored', True), meta.get('reason', '')
    _require(isinstance(version, str) and len(version) <= 200, MALFORMED, f'bundle_ack version {_show(version)}')
    _require(isinstance(stored, bool) and isinstance(reason, str), MALFORMED, 'bundle_ack stored/reason of wrong type')
    return version, stored, reason[:MAX_TEXT]


# --- parts ---------------------------------------------------------------------------------------------
def _check_label_update(chunk_id: str, update: Any, arrays: dict) -> None:
    _require(isinstance(update, dict) and _is_text(update.get('label')) and isinstance(update.get('success'), bool),
             BAD_CHUNK, f'chunk {chunk_id}: label_update {_show(update)} is not {{label: str, success: bool}}')
    _require(not arrays, BAD_CHUNK, f'chunk {chunk_id}: a label update carries no arrays, got {sorted(arrays)}')


def _check_step_meta(chunk_id: str, meta: dict) -> dict | None:
    first, last = meta.get('first_step'), meta.get('last')
    _require(_is_int(first, 0, MAX_EPISODE_STEPS), BAD_CHUNK, f'chunk {chunk_id}: first_step {_show(first)} '
             f'is not an integer in [0, {MAX_EPISODE_STEPS}]')
    _require(_is_text(meta.get('instruction')), BAD_CHUNK, f'chunk {chunk_id}: instruction is not a text '
             f'of at most {MAX_TEXT} characters')
    _require(_is_int(meta.get('rewards_missing', 0), 0, MAX_EPISODE_STEPS),
             BAD_CHUNK, f'chunk {chunk_id}: rewards_missing {_show(meta.get("rewards_missing"))}')
    _require(last is None or (isinstance(last, dict) and isinstance(last.get('success'), bool)
                              and _is_text(last.get('label', '')) and _is_int(last.get('steps'), 0, MAX_EPISODE_STEPS)),
             BAD_CHUNK, f'chunk {chunk_id}: last {_show(last)} is not {{success: bool, label: str, steps: int}}')
    return last


def _check_arrays(chunk_id: str, arrays: dict[str, np.ndarray], hello: Hello, last: bool, max_steps: int) -> int:
    step_arrays = {**STEP_ARRAYS, **{image_key(cam): 'uint8' for cam in hello.more_cameras}}
    final_arrays = {**FINAL_ARRAYS, **{final_image_key(cam): 'uint8' for cam in hello.more_cameras}}
    allowed = {**step_arrays, **(final_arrays if last else {})}
    missing, extra = sorted(set(step_arrays) - set(arrays)), sorted(set(arrays) - set(allowed))
    _require(not missing and not extra, BAD_CHUNK, f'chunk {chunk_id}: arrays missing {missing}, unexpected {extra}')
    wrong = [f'{k} is {a.dtype}' for k, a in arrays.items() if a.dtype.name != allowed[k]]
    _require(not wrong, BAD_CHUNK, f'chunk {chunk_id}: {", ".join(wrong)} (expected {allowed})')
    action = arrays['action']
    _require(action.ndim == 2 and action.shape[0] <= max_steps, BAD_CHUNK,
             f'chunk {chunk_id}: action shape {list(action.shape)}, expected [n <= {max_steps}, {hello.action_dim}]')
    finals = [k for k in final_arrays if k in arrays]
    _require(not finals or len(finals) == len(final_arrays), BAD_CHUNK,
             f'chunk {chunk_id}: {", ".join(sorted(final_arrays))} come together (got {", ".join(finals)})')
    n = action.shape[0]
    sides = {cam: _image_sides(chunk_id, arrays[image_key(cam)]) for cam in hello.cameras}
    _check_shapes(chunk_id, arrays, _expected_shapes(n, sides, len(hello.state_keys), hello.action_dim))
    _check_values(chunk_id, arrays)
    return n


def _image_sides(chunk_id: str, image: np.ndarray) -> tuple[int, int]:
    """Each camera's images may have their own size, within IMAGE_SIDES."""
    sides = image.shape[1:3]
    _require(image.ndim == 4 and image.shape[3] == 3 and all(IMAGE_SIDES[0] <= s <= IMAGE_SIDES[1] for s in sides),
             BAD_CHUNK, f'chunk {chunk_id}: image shape {list(image.shape)}, expected [n, H, W, 3] with '
             f'H, W in {list(IMAGE_SIDES)}')
    return tuple(sides)


def _expected_shapes(n: int, sides: dict[str, tuple[int, int]], state: int, action: int
                     ) -> dict[str, tuple[int, ...]]:
    shapes = {'image_stamp': (n,), 'state': (n, state), 'action': (n, action), 'reward': (n,), 'intervention': (n,),
              'final_state': (1, state)}
    for cam, (h, w) in sides.items():
        shapes[image_key(cam)], shapes[final_image_key(cam)] = (n, h, w, 3), (1, h, w, 3)
    return shapes


def _check_shapes(chunk_id: str, arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    wrong = [f'{k} {list(a.shape)} (expected {list(expected[k])})' for k, a in arrays.items() if a.shape != expected[k]]
    _require(not wrong, BAD_CHUNK, f'chunk {chunk_id}: shapes {", ".join(wrong)}')


def _check_values(chunk_id: str, arrays: dict[str, np.ndarray]) -> None:
    """Actions and states train the agent: not finite is refused. A reward may be NaN (missing), never inf."""
    bad = [k for k in ('action', 'state', 'image_stamp', 'final_state') if k in arrays
           and not np.isfinite(arrays[k]).all()]
    bad += ['reward (inf)'] if np.isinf(arrays['reward']).any() else []
    _require(not bad, BAD_CHUNK, f'chunk {chunk_id}: values not finite in {", ".join(bad)}')


def _require(ok: Any, code: str, reason: str) -> None:
    if not ok:
        raise Refused(code, reason, permanent=True)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and ID.fullmatch(value) is not None


def _is_int(value: Any, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


def _show(value: Any) -> str:
    """A value from the wire, short, for a reason line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'
