"""Fuzzing the learner's message handling over a real socket, against a real Learner: random frames,
mutations of a valid chunk (meta fields of wrong types or missing, lying headers, truncated buffers, huge
declared shapes, wrong dtypes and shapes, non-finite values, frames dropped or added). After every one, the
sender got an answer (a refusal with a code and a reason, or an ack if the mutation left a valid chunk), and a
well-formed robot is still acknowledged; at the end its episode is complete in the replay: nothing
acknowledged is lost. A storm of bad messages costs one log line per peer and reason, not one per message."""
import json
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamp_ros.learner.learner import Learner, LearnerOptions
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from lamp_ros.link.wire import KINDS, Message, encode
from tests.robot_traffic import RawPeer, hello_meta, robot, wait
from tests.test_link import MemoryStore

# the second test checks what the first left in the module's learner: both on one xdist worker, in order
pytestmark = pytest.mark.xdist_group('link_fuzz')

CODES = {'malformed', 'too_large', 'hello_first', 'bad_hello', 'reward_source', 'bad_chunk', 'episode_conflict',
         'unexpected'}
STEPS = 5


def chunk(robot_id: str, episode: str, i: int, last: bool = False) -> tuple[dict, dict]:
    """Chunk i (STEPS steps) of an episode in the robot's format (lamp_ros/core/transitions.py)."""
    rng = np.random.default_rng(i)
    meta = {'episode': episode, 'instruction': 'push button', 'first_step': i * STEPS, 'rewards_missing': 0,
            'robot_id': robot_id, 'last': {'success': True, 'label': '', 'steps': (i + 1) * STEPS} if last else None}
    arrays = {'image_front': rng.integers(0, 255, (STEPS, 16, 16, 3), dtype=np.uint8),
              'image_stamp': np.arange(STEPS, dtype=np.float64) + i * STEPS,
              'state': np.ones((STEPS, 8), np.float32), 'action': rng.uniform(-1, 1, (STEPS, 4)).astype(np.float32),
              'reward': np.linspace(0, 1, STEPS, dtype=np.float32), 'intervention': np.zeros(STEPS, bool)}
    if last:
        arrays.update(final_image=arrays['image_front'][:1].copy(), final_state=arrays['state'][:1].copy())
    return meta, arrays


class Rig:
    def __init__(self, tmp):
        self.learner = Learner(LearnerOptions(tmp / 'run', preset='debug', bind='tcp://127.0.0.1:*',
                                              max_message_bytes=1 << 20))
        self.good = robot(tmp, self.learner.server.endpoint)
        self.mallory = RawPeer(self.learner.server.endpoint, b'mallory')
        self.sent: list[str] = []                    # chunk ids of the good robot, in order
        self.examples = 0

    def good_chunk(self) -> None:
        """The well-formed robot's next chunk is acknowledged."""
        meta, arrays = chunk('robot', 'robot-fuzz-00001', len(self.sent))
        del meta['robot_id']
        self.sent.append(self.good.send(meta, arrays))
        assert wait(lambda: self.good.backlog == 0, 10), f'chunk {len(self.sent)} of the robot not acknowledged'

    def close(self):
        self.mallory.close()
        self.good.close()
        self.learner.close()


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp('fuzz'))
    assert wait(lambda: r.good.connected)
    yield r
    r.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
META_KEYS = ['chunk_id', 'robot_id', 'episode', 'first_step', 'instruction', 'last', 'rewards_missing',
             'label_update']
ARRAY_NAMES = ['image_front', 'image_stamp', 'state', 'action', 'reward', 'intervention', 'final_image',
               'final_state', 'extra']
DTYPES = ['uint8', 'int8', 'int32', 'int64', 'float32', 'float64', 'bool']


@st.composite
def bad_arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 6), max_size=4))
    value = draw(st.sampled_from([0, 1, np.nan, np.inf]))
    return np.full(shape, value if dtype.startswith('float') else 1, dtype)


@st.composite
def mutated_chunk(draw):
    """A valid chunk of mallory's, then 1-3 changes of its meta, arrays, header or frames (some leave it valid,
    some make it contradict mallory's chunks stored before: overlapping steps, another image size)."""
    episode = f'mallory-{draw(st.integers(0, 3))}'
    meta, arrays = chunk('mallory', episode, draw(st.integers(0, 3)), last=draw(st.booleans()))
    meta['chunk_id'] = f'm-{draw(st.integers(0, 10**6))}'
    for _ in range(draw(st.integers(1, 3))):
        change(draw, draw(st.sampled_from(CHANGES)), meta, arrays)
    frames = [bytes(f) for f in encode(Message('chunk', meta, arrays))]
    if draw(st.booleans()):
        frames[1] = draw(lying_header(json.loads(frames[1])))
    for _ in range(draw(st.integers(0, 2))):
        frame_change(draw, draw(st.sampled_from(FRAME_CHANGES)), frames)
    return frames


CHANGES = ['keep', 'shift', 'resize', 'meta_set', 'meta_del', 'array_set', 'array_del', 'foreign_episode']
FRAME_CHANGES = ['truncate', 'extend', 'drop', 'dup', 'flip', 'kind']


def change(draw, op: str, meta: dict, arrays: dict) -> None:
    if op == 'shift' and type(meta.get('first_step')) is int:       # overlaps a chunk stored before
        meta['first_step'] += draw(st.integers(1, STEPS - 1))
        meta['last'] = None
        arrays.pop('final_image', None), arrays.pop('final_state', None)
    elif op == 'resize':                                             # another image size in one episode
        for name in ('image_front', 'final_image'):
            if name in arrays:
                arrays[name] = np.zeros((len(arrays[name]), 24, 24, 3), np.uint8)
    elif op == 'meta_set':
        meta[draw(st.sampled_from(META_KEYS + ['x']))] = draw(json_values)
    elif op == 'meta_del':
        meta.pop(draw(st.sampled_from(META_KEYS)), None)
    elif op == 'array_set':
        arrays[draw(st.sampled_from(ARRAY_NAMES))] = draw(bad_arrays())
    elif op == 'array_del':
        arrays.pop(draw(st.sampled_from(ARRAY_NAMES)), None)
    elif op == 'foreign_episode':
        meta['episode'] = 'robot-fuzz-00001'       # the good robot's episode: never another robot's


def frame_change(draw, op: str, frames: list) -> None:
    if op in ('truncate', 'extend') and len(frames) > 2:              # a buffer not a multiple of its dtype
        i = draw(st.integers(2, len(frames) - 1))
        k = draw(st.integers(1, 7))
        frames[i] = frames[i][:-k] if op == 'truncate' else frames[i] + b'\x01' * k
    elif op == 'drop' and len(frames) > 1:
        del frames[draw(st.integers(1, len(frames) - 1))]
    elif op == 'dup':
        frames.append(frames[draw(st.integers(0, len(frames) - 1))])
    elif op == 'flip' and len(frames) > 1 and frames[1]:
        i = draw(st.integers(0, len(frames[1]) - 1))
        frames[1] = frames[1][:i] + bytes([frames[1][i] ^ draw(st.integers(1, 255))]) + frames[1][i + 1:]
    elif op == 'kind':
        frames[0] = draw(st.sampled_from([k.encode() for k in KINDS] + [b'', b'\xff' * 40]))


@st.composite
def lying_header(draw, header):
    op = draw(st.sampled_from(['shape', 'huge', 'huge', 'dtype', 'name', 'protocol', 'meta', 'arrays', 'whole']))
    specs = header['arrays'] or [{}]
    spec = specs[draw(st.integers(0, len(specs) - 1))]
    if op == 'shape':
        spec['shape'] = draw(json_values)
    elif op == 'huge':
        spec['shape'] = draw(st.sampled_from([[2**40, 2**40], [10**12], [2**31, 3], [-1, 5], [2**64, 0]]))
    elif op == 'dtype':
        spec['dtype'] = draw(st.sampled_from(['object', 'float16', 'U10', 'V8', '<f4', None, 3]))
    elif op == 'name':
        spec['name'] = draw(json_values)
    elif op == 'protocol':
        header['protocol'] = draw(json_values)
    elif op == 'meta':
        header['meta'] = draw(json_values)
    elif op == 'arrays':
        header['arrays'] = draw(json_values)
    else:
        header = draw(json_values)
    return json.dumps(header).encode()


random_frames = st.lists(st.binary(max_size=300), min_size=1, max_size=6)
kind_and_junk = st.tuples(st.sampled_from([k.encode() for k in KINDS]), st.binary(max_size=200),
                          st.lists(st.binary(max_size=100), max_size=3)).map(lambda t: [t[0], t[1], *t[2]])
json_header = st.tuples(st.sampled_from([k.encode() for k in KINDS]), json_values).map(
    lambda t: [t[0], json.dumps({'protocol': 1, 'meta': t[1], 'arrays': [], 'blobs': []}).encode()])


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=st.one_of(random_frames, kind_and_junk, json_header, mutated_chunk(), mutated_chunk(), mutated_chunk()),
       hello_first=st.booleans())
def test_any_message_is_answered_and_the_robot_goes_on(rig, frames, hello_first):
    if hello_first:                                  # most mutations then reach the chunk checks
        rig.mallory.say('hello', hello_meta('mallory'))
        assert [m.kind for m in rig.mallory.replies(2.0, count=1)] == ['welcome']
    rig.mallory.send(frames)
    answers = rig.mallory.replies(2.0, count=1)
    if frames[0] == b'bundle_ack' and not answers:
        pass                                         # a bundle_ack that happens to be valid needs no answer
    else:
        assert len(answers) == 1 and answers[0].kind in ('refused', 'ack', 'pong', 'welcome'), (frames[:2], answers)
    for answer in answers:
        if answer.kind == 'refused':
            assert answer.meta['code'] in CODES and answer.meta['reason'], answer.meta
    rig.good_chunk()
    rig.examples += 1
    assert rig.learner.server.failure is None


def test_nothing_acknowledged_is_lost(rig):
    assert rig.examples >= 100
    meta, arrays = chunk('robot', 'robot-fuzz-00001', len(rig.sent), last=True)
    del meta['robot_id']
    rig.sent.append(rig.good.send(meta, arrays))
    assert wait(lambda: rig.good.backlog == 0, 10)
    learner = rig.learner
    assert all(learner.store.is_stored(c) for c in rig.sent)
    episodes = [learner.replay.load(e) for e in learner.replay.episodes]
    ours = [e for e in episodes if str(e['source_episode']) == 'robot-fuzz-00001']
    assert len(ours) == 1 and len(ours[0]['action']) == STEPS * len(rig.sent), 'the whole episode, once'
    assert learner.server._thread.is_alive() and learner.server.failure is None
    assert learner.status()['refused'], 'the refusals are counted in the status'


def test_a_storm_is_logged_once_per_peer_and_reason(tmp_path, caplog):
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*', fault_clear_s=0.5), store.store, store.is_stored)
    peer = RawPeer(server.endpoint, b'storm')
    good = robot(tmp_path, server.endpoint)
    caplog.set_level(logging.INFO, logger='lamp_ros.link')
    try:
        assert wait(lambda: good.connected)
        peer.say('hello', hello_meta('storm'))
        for i in range(3000):
            peer.send([b'chunk', b'not json'] if i % 2 else [b'ping'])    # malformed, in two ways
            if i % 500 == 0:
                good.send(*chunk('robot', 'robot-storm', i // 500))          # accepted between the bad ones
        assert wait(lambda: server.faults.totals().get('malformed') == 3000, 20), server.faults.totals()
        assert wait(lambda: good.backlog == 0)
        assert len(peer.replies(5.0, count=3001)) == 3001, 'every one is answered'
        lines = lambda: [r.getMessage() for r in caplog.records if r.getMessage().startswith('robot storm: ')]  # noqa: E731
        assert len(lines()) == 1 and 'message refused (malformed)' in lines()[0], lines()
        assert wait(lambda: len(lines()) == 2, 5), 'one line when it clears'
        assert 'malformed' in lines()[1] and 'cleared' in lines()[1] and '3000 in all' in lines()[1], lines()
    finally:
        peer.close()
        good.close()
        server.close()
