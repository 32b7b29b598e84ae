"""The robot <-> learner link over real zmq sockets on loopback: delivery, acknowledgement, backlog after a
learner outage or a robot restart, duplicates, CurveZMQ authentication, bundle push."""
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from lamp_ros.link import keys
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from lamp_ros.link.outbox import Outbox
from lamp_ros.link.robot_client import ClientConfig, LinkClient
from tests.robot_traffic import wait
from lamp_ros.link.wire import Message, WireError, decode, encode, pack, unpack


class MemoryStore:
    """What a learner's replay does, in memory: idempotent on chunk ids (also used by test_actor_node)."""

    def __init__(self):
        self.chunks: dict[str, tuple[dict, dict]] = {}
        self.lock = threading.Lock()

    def store(self, chunk_id, meta, arrays):
        with self.lock:
            self.chunks[chunk_id] = (meta, {k: v.copy() for k, v in arrays.items()})

    def is_stored(self, chunk_id):
        with self.lock:
            return chunk_id in self.chunks

    def transitions(self):
        with self.lock:
            return sum(len(a.get('action', ())) for _, a in self.chunks.values())

    def ordered(self):
        with self.lock:
            return sorted(self.chunks.values(), key=lambda c: c[0].get('first_step', -1))


def chunk(i: int, n: int = 5, robot: str = 'robot'):
    """Chunk i of an episode, as lamp_ros/core/transitions.py makes them (its meta and arrays)."""
    return {'episode': f'{robot}-ep0', 'first_step': i * n, 'instruction': 'push button', 'last': None}, {
        'image_front': np.full((n, 16, 16, 3), i % 256, np.uint8), 'image_stamp': np.arange(n, dtype=np.float64),
        'state': np.zeros((n, 8), np.float32), 'action': np.full((n, 4), i, np.float32),
        'reward': np.arange(n, dtype=np.float32), 'intervention': np.zeros(n, bool)}


def client(tmp: Path, endpoint: str, **kw) -> LinkClient:
    return LinkClient(ClientConfig(endpoint=endpoint, outbox_dir=tmp / 'outbox', bundle_dir=tmp / 'bundles',
                                   ping_interval_s=0.1, timeout_s=0.5, **kw))


def test_wire_round_trip_and_rejections():
    meta, arrays = chunk(3)
    msg = decode(encode(Message('chunk', meta, arrays, {'note': b'xyz'})))
    assert msg.kind == 'chunk' and msg.meta == meta and msg.blobs == {'note': b'xyz'}
    np.testing.assert_array_equal(msg.arrays['image_front'], arrays['image_front'])
    frames = encode(Message('chunk', meta, arrays))
    with pytest.raises(WireError, match='header announces'):
        decode(frames[:-1])
    with pytest.raises(WireError, match='unknown message kind'):
        decode([b'evil'] + frames[1:])
    with pytest.raises(WireError, match='has 7 bytes, header says'):
        decode(frames[:2] + [b'\0' * 7] + frames[3:])
    with pytest.raises(WireError, match='torn write'):
        unpack(pack(frames)[:-3])


def test_outbox_survives_restart_and_sets_aside_unreadable_files(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.new_id() for _ in range(3)]
    for i, cid in enumerate(ids):
        box.put(cid, encode(Message('chunk', *chunk(i))))
    again = Outbox(tmp_path)
    assert [cid for cid, _ in again.pending()] == ids
    path = again.pending()[1][1]
    path.write_bytes(path.read_bytes()[:-10])
    assert again.load(ids[1]) is None and len(again) == 2
    assert list(tmp_path.glob('*.unreadable'))
    assert again.ack(ids[0]) and not again.ack(ids[0])


def test_every_chunk_sent_is_stored_once(tmp_path):
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    c = client(tmp_path, server.endpoint)
    try:
        for i in range(40):
            c.send(*chunk(i))
        # the outbox file goes before the acknowledgement is counted: wait for both
        assert wait(lambda: store.transitions() == 200 and c.backlog == 0 and c.chunks_acked == 40)
        assert server.chunks_stored == 40
        assert not list((tmp_path / 'outbox').glob('*.chunk'))
    finally:
        c.close()
        server.close()


def test_learner_outage_buffers_on_disk_and_delivers_backlog(tmp_path):
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    endpoint = server.endpoint
    c = client(tmp_path, endpoint)
    try:
        c.send(*chunk(0))
        assert wait(lambda: store.transitions() == 5 and c.connected)
        server.close()                                        # the learner dies
        assert wait(lambda: not c.connected, 5)
        for i in range(1, 11):
            c.send(*chunk(i))
        time.sleep(0.3)
        assert c.backlog == 10 and len(list((tmp_path / 'outbox').glob('*.chunk'))) == 10
        server = LinkServer(ServerConfig(endpoint=endpoint), store.store, store.is_stored)   # and comes back
        assert wait(lambda: c.backlog == 0, 15), f'backlog {c.backlog}'
        assert store.transitions() == 55
        firsts = sorted(m['first_step'] for m, _ in store.chunks.values())
        assert firsts == list(range(0, 55, 5))
    finally:
        c.close()
        server.close()


def test_a_restarted_server_gets_its_port_back_and_a_taken_port_is_refused():
    """ZMQ frees a closed socket's port a moment after close(): an immediate restart waits for it (it failed about
    once in a hundred restarts before), while a port another server holds is still refused."""
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    endpoint = server.endpoint
    for _ in range(50):
        server.close()
        server = LinkServer(ServerConfig(endpoint=endpoint), store.store, store.is_stored)
    try:
        started = time.monotonic()
        with pytest.raises(zmq.ZMQError, match='in use'):
            LinkServer(ServerConfig(endpoint=endpoint, bind_wait_s=0.3), store.store, store.is_stored)
        assert time.monotonic() - started >= 0.3
    finally:
        server.close()


def test_robot_restart_resends_pending_chunks_without_duplicates(tmp_path):
    store = MemoryStore()
    c = client(tmp_path, 'tcp://127.0.0.1:1')                 # nobody there: everything stays pending
    for i in range(4):
        c.send(*chunk(i))
    c.close()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    sent_before = next(iter(Outbox(tmp_path / 'outbox').pending()))[0]
    store.store(sent_before, *chunk(0))                       # the learner already had the first one
    c2 = client(tmp_path, server.endpoint)
    try:
        assert wait(lambda: c2.backlog == 0)
        assert store.transitions() == 20 and server.duplicates == 1 and server.chunks_stored == 3
    finally:
        c2.close()
        server.close()


def test_curve_keys_authenticate_and_refuse_strangers(tmp_path):
    good = keys.generate(tmp_path / 'keys')
    stranger = keys.generate(tmp_path / 'stranger')
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*', keys=keys.load(good['learner_secret']),
                                     authorized_dir=good['authorized']), store.store, store.is_stored)
    learner_public = keys.load(good['learner_public']).public
    ok = client(tmp_path / 'ok', server.endpoint, robot_id='ok', keys=keys.load(good['robot_secret']),
                server_public_key=learner_public)
    bad = client(tmp_path / 'bad', server.endpoint, robot_id='bad', keys=keys.load(stranger['robot_secret']),
                 server_public_key=learner_public)
    try:
        ok.send(*chunk(1, robot='ok'))
        bad.send(*chunk(2, robot='bad'))
        assert wait(lambda: ok.backlog == 0)
        time.sleep(1.0)
        assert not bad.connected and bad.backlog == 1
        assert [m['robot_id'] for m, _ in store.chunks.values()] == ['ok']
    finally:
        ok.close()
        bad.close()
        server.close()
    with pytest.raises(ValueError, match='both'):
        LinkClient(ClientConfig(keys=keys.load(good['robot_secret'])))


def test_bundle_push_arrives_intact(tmp_path):
    bundle = tmp_path / 'b'
    (bundle / 'tokenizer').mkdir(parents=True)
    (bundle / 'manifest.json').write_text('{"x": 1}')
    (bundle / 'tokenizer' / 'vocab.txt').write_bytes(b'[PAD]\n' * 1000)
    (bundle / 'policy.onnx').write_bytes(np.random.default_rng(0).bytes(2_000_000))
    got = []
    store = MemoryStore()
    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*'), store.store, store.is_stored)
    c = LinkClient(ClientConfig(endpoint=server.endpoint, outbox_dir=tmp_path / 'o', bundle_dir=tmp_path / 'in',
                                ping_interval_s=0.1), on_bundle=lambda v, p: got.append((v, p)))
    try:
        assert wait(lambda: server.robots)
        assert server.push_bundle(bundle, 'v7') == 1
        assert wait(lambda: got)
        version, path = got[0]
        assert version == 'v7' and path == tmp_path / 'in' / 'v7'
        for f in ('manifest.json', 'tokenizer/vocab.txt', 'policy.onnx'):
            assert (path / f).read_bytes() == (bundle / f).read_bytes()
        assert wait(lambda: server.bundle_acks.get('robot') == 'v7')

        # the next version changes the policy only: the rest is reused from v7 on the robot's disk
        (bundle / 'policy.onnx').write_bytes(np.random.default_rng(1).bytes(2_000_000))
        (bundle / 'manifest.json').write_text('{"x": 2}')
        sent = server.bundle_bytes_sent
        server.push_bundle(bundle, 'v8')
        assert wait(lambda: len(got) == 2)
        assert server.bundle_bytes_sent - sent < 2_000_100, 'vocab.txt must not travel again'
        for f in ('manifest.json', 'tokenizer/vocab.txt', 'policy.onnx'):
            assert (got[1][1] / f).read_bytes() == (bundle / f).read_bytes()

        # a robot that lost the base version says so, and gets every file next time
        shutil.rmtree(tmp_path / 'in')
        server.push_bundle(bundle, 'v9')
        assert wait(lambda: 'robot' not in server.bundle_acks)
        assert len(got) == 2
        server.push_bundle(bundle, 'v9')
        assert wait(lambda: len(got) == 3) and (got[2][1] / 'tokenizer' / 'vocab.txt').is_file()
    finally:
        c.close()
        server.close()


def test_a_pushed_bundle_cannot_write_or_reuse_outside_its_directory(tmp_path):
    from lamp_ros.link.robot_client import _fill_bundle
    base, tmp = tmp_path / 'v1', tmp_path / '.v2.partial'
    base.mkdir()
    (base / 'policy.onnx').write_bytes(b'old')
    (tmp_path / 'secret').write_bytes(b'not a bundle file')
    assert 'escapes the bundle' in _fill_bundle(tmp, {'../v1/policy.onnx': b'evil'}, base, {})
    assert (base / 'policy.onnx').read_bytes() == b'old'
    assert 'is missing' in _fill_bundle(tmp, {}, base, {'stolen': '../secret'})
    assert _fill_bundle(tmp, {'manifest.json': b'{}'}, base, {'policy.onnx': 'policy.onnx'}) == ''
    assert (tmp / 'policy.onnx').read_bytes() == b'old' and (tmp / 'manifest.json').read_bytes() == b'{}'
