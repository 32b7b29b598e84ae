"""Learner side of the link: receives chunks of transitions from robots, stores them (durably, through the
`store` callback) before acknowledging, and pushes policy bundles to the robots.

One background thread owns the zmq ROUTER socket. Nothing a peer sends can stop it: every message is
checked (size, frames, header, then against the robot's hello: lamp_ros/link/schema.py) before it is stored
or acknowledged, and a bad one is answered with a refusal (code and reason, lamp_ros/link/refusal.py) and
logged once per peer and code (lamp_ros/core/fault_log.py). A robot must complete a valid hello before its chunks are taken
and before it is pushed bundles. A chunk is acknowledged only after `store` returned, and `store` must be
idempotent on chunk ids (a robot resends what was not acknowledged; a duplicate is acknowledged again
without being stored twice); it may refuse a chunk (Refused) or fail to write it (OSError: the robot resends
it later). Anything else escaping the thread is a bug: it is logged with its traceback, `failure` is set and
`check()` raises, so the learner process exits non-zero and its supervisor restarts it.

Sizes: a frame over `max_message_bytes` is refused by libzmq from its length prefix, before it is buffered
(ZMQ_MAXMSGSIZE; the peer is disconnected, so no reason reaches it: our robots check the limit the welcome
announced before they send). A message of several frames is delivered by libzmq only whole, so its total is
checked once it is here; at most RECEIVE_HWM messages per peer wait in libzmq's queue.
With CurveZMQ keys, only robots whose public key is in the authorized directory can connect at all.
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator

from lamp_ros.contract import ACTION_DIM, STATE_KEYS
from lamp_ros.core.fault_log import FaultLog
from lamp_ros.link.keys import CurveKeys
from lamp_ros.link.refusal import HELLO_FIRST, MALFORMED, STORE_FAILED, TOO_LARGE, UNEXPECTED, Refused, \
    refusal_message
from lamp_ros.link.schema import ID, Hello, check_bundle_ack, check_chunk, check_hello
from lamp_ros.link.wire import Message, WireError, buffers, decode, encode, peek_meta

log = logging.getLogger(__name__)

MANIFEST_FILE = 'manifest.json'        # always sent: it names the version's files and their hashes
PUSHED_VERSIONS_KEPT = 8
MAX_FRAMES = 16                        # a chunk is 2 + 8 frames; robots send no blobs
RECEIVE_HWM = 16                       # whole messages queued per peer before libzmq stops reading it
CURVE_MARGIN = 1024                    # CurveZMQ's per-frame overhead, so the limit means payload bytes
RECEIVE_BATCH = 256                    # messages handled between looks at the bundle queue and `stop`


@dataclass(frozen=True)
class BundleOffer:
    version: str
    files: dict[str, bytes]                # path in the bundle -> content
    hashes: dict[str, str]                 # path -> sha256


Store = Callable[[str, dict, dict[str, np.ndarray]], None]   # (chunk id, meta, arrays); idempotent, durable
AcceptHello = Callable[[Hello], None]     # the learner's own conditions on a hello; raises Refused


@dataclass(frozen=True)
class ServerConfig:
    endpoint: str = 'tcp://127.0.0.1:5555'
    keys: CurveKeys | None = None              # the learner's key pair
    authorized_dir: Path | None = None         # public keys of the robots allowed in
    robot_timeout_s: float = 5.0               # a robot silent for this long is no longer pushed bundles
    max_message_bytes: int = 4 << 20           # 8 chunks of 10 steps of 128x128 rgb8 (~0.5 MB each)
    max_chunk_steps: int = 1000
    state_keys: tuple[str, ...] = STATE_KEYS   # what a robot's hello must announce
    action_dim: int = ACTION_DIM
    max_robots: int = 64                       # robots with a hello kept; the longest silent one goes first
    fault_clear_s: float = 10.0                # a refusal not repeated for this long is logged as cleared
    bind_wait_s: float = 2.0                   # a port still in use is retried this long (see _bind)



def _bind(sock: zmq.Socket, endpoint: str, wait_s: float) -> None:
    """Bind, retrying 'address in use' for up to wait_s: ZMQ releases a closed socket's port in its I/O thread,
    a moment after close() returns, so a learner link restarted at once on the same port would otherwise fail
    about once in a hundred (measured). A port that stays taken is still refused with ZMQ's error."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            sock.bind(endpoint)
            return
        except zmq.ZMQError as e:
            if e.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)

class LinkFailed(RuntimeError):
    """The link thread died (a bug, not an input): the learner must stop and be restarted."""


@dataclass
class _Robot:
    hello: Hello
    heard: float                               # monotonic


class LinkServer:
    def __init__(self, config: ServerConfig, store: Store, is_stored: Callable[[str], bool],
                 accept_hello: AcceptHello | None = None) -> None:
        if (config.keys is None) != (config.authorized_dir is None):
            raise ValueError('CurveZMQ needs both the learner key pair and the authorized robot keys (or neither)')
        self.config = config
        self.store, self.is_stored, self.accept_hello = store, is_stored, accept_hello
        self.chunks_stored = 0
        self.duplicates = 0
        self.bundle_acks: dict[str, str] = {}            # robot id -> last bundle version acknowledged
        self.faults = FaultLog(log, 'message refused', config.fault_clear_s)
        self.failure: BaseException | None = None
        self.endpoint = config.endpoint
        self._robots: dict[bytes, _Robot] = {}           # zmq identity -> its valid hello (link thread writes)
        self._robots_lock = threading.Lock()
        self._ctx = zmq.Context.instance()
        self._auth: ThreadAuthenticator | None = None
        self._outgoing: queue.Queue[BundleOffer] = queue.Queue()
        self._pushed: dict[str, dict[str, str]] = {}      # version -> {file: sha256} of recent pushes (link thread)
        self.bundle_bytes_sent = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='learner-link', daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    @property
    def robots(self) -> dict[str, float]:
        """Robots that completed a valid hello -> when last heard (monotonic)."""
        with self._robots_lock:
            return {r.hello.robot_id: r.heard for r in self._robots.values()}

    def check(self) -> None:
        """Raise LinkFailed if the link thread died."""
        if self.failure is not None:
            raise LinkFailed(f'the learner link thread died: {self.failure!r}') from self.failure

    def push_bundle(self, bundle_dir: Path, version: str) -> int:
        """Queue a bundle for every robot with a hello heard from recently; returns how many robots it goes to.

        A robot that acknowledged an earlier bundle of this learner gets only the files whose content changed
        (a finetuned policy: the few-MB ONNX policy, not the unchanged ~150 MB text encoder) and reuses the
        rest from that bundle on its disk; any other robot gets every file."""
        root = Path(bundle_dir)
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}
        listed = _manifest_hashes(files.get(MANIFEST_FILE, b''))
        hashes = {rel: listed.get(rel) or hashlib.sha256(data).hexdigest() for rel, data in files.items()}
        self._outgoing.put(BundleOffer(version, files, hashes))
        now = time.monotonic()
        return sum(1 for t in self.robots.values() if now - t < self.config.robot_timeout_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._auth is not None:
            self._auth.stop()

    # --- link thread ---------------------------------------------------------------------------------
    def _socket(self) -> zmq.Socket:
        cfg = self.config
        s = self._ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)        # sending to a gone robot raises instead of vanishing
        s.setsockopt(zmq.MAXMSGSIZE, cfg.max_message_bytes + CURVE_MARGIN)
        s.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        if cfg.keys is not None:
            self._auth = ThreadAuthenticator(self._ctx, log=log.getChild('auth'))
            self._auth.start()
            self._auth.configure_curve(domain='*', location=str(cfg.authorized_dir))
            s.curve_publickey, s.curve_secretkey = cfg.keys.public, cfg.keys.secret
            s.curve_server = True
        _bind(s, cfg.endpoint, cfg.bind_wait_s)
        self.endpoint = s.getsockopt_string(zmq.LAST_ENDPOINT)      # the real port when bound to ':*'
        return s

    def _run(self) -> None:
        try:
            sock = self._socket()
        except BaseException as e:   # reported to the constructor's caller, e.g. address in use
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(sock)
        except BaseException as e:   # a bug, never an input: said once; the learner stops on check()
            self.failure = e
            log.critical('the learner link thread died: %r', e, exc_info=True)
        finally:
            sock.close(linger=0)

    def _serve(self, sock: zmq.Socket) -> None:
        swept = time.monotonic()
        while not self._stop.is_set():
            while not self._outgoing.empty():
                self._send_bundle(sock, self._outgoing.get())
            if time.monotonic() - swept > 1.0:
                self.faults.sweep()
                swept = time.monotonic()
            if not sock.poll(20):
                continue
            for _ in range(RECEIVE_BATCH):
                if not sock.poll(0):
                    break
                identity, *frames = sock.recv_multipart(copy=False)
                self._handle(sock, identity.bytes, frames)

    def _reply(self, sock: zmq.Socket, identity: bytes, msg: Message) -> None:
        try:
            sock.send_multipart([identity] + encode(msg), flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:                   # gone (EHOSTUNREACH) or not reading (EAGAIN)
            self.faults.fault(_name(identity), 'unreachable', f'could not answer: {e}')

    def _send_bundle(self, sock: zmq.Socket, offer: BundleOffer) -> None:
        self._pushed[offer.version] = offer.hashes
        while len(self._pushed) > PUSHED_VERSIONS_KEPT:
            self._pushed.pop(next(iter(self._pushed)))
        now = time.monotonic()
        with self._robots_lock:
            robots = [(identity, r.hello.robot_id) for identity, r in self._robots.items()
                      if now - r.heard < self.config.robot_timeout_s]
        for identity, robot in robots:
            base = self.bundle_acks.get(robot, '')
            reuse = self._reusable(offer, base)
            blobs = {rel: data for rel, data in offer.files.items() if rel not in reuse}
            meta = {'version': offer.version, 'base': base if reuse else '', 'reuse': reuse}
            self._reply(sock, identity, Message('bundle', meta, blobs=blobs))
            self.bundle_bytes_sent += sum(len(b) for b in blobs.values())

    def _reusable(self, offer: BundleOffer, base: str) -> dict[str, str]:
        """Files of the offer the robot holds already in its acknowledged `base` bundle (same hash): path in the
        offer -> path in base. Never the manifest, which names this version."""
        by_hash = {digest: rel for rel, digest in self._pushed.get(base, {}).items()} if base else {}
        return {rel: by_hash[d] for rel, d in offer.hashes.items() if d in by_hash and rel != MANIFEST_FILE}

    # --- one message ------------------------------------------------------------------------------------
    def _handle(self, sock: zmq.Socket, identity: bytes, frames: list) -> None:
        """Accept or refuse one message; a refusal is answered, and logged once per peer and code while it lasts."""
        try:
            self._dispatch(sock, identity, frames)
        except Refused as refused:
            self.faults.fault(_name(identity), refused.code, refused.reason)
            chunk_id = peek_meta(frames).get('chunk_id')
            self._reply(sock, identity, refusal_message(refused, chunk_id if _is_id(chunk_id) else ''))

    def _dispatch(self, sock: zmq.Socket, identity: bytes, frames: list) -> None:
        views = buffers(frames)
        total, limit = sum(v.nbytes for v in views), self.config.max_message_bytes
        if len(views) > MAX_FRAMES or total > limit:
            raise Refused(TOO_LARGE, f'{len(views)} frames of {total} bytes; the learner takes at most {MAX_FRAMES} '
                                     f'frames and {limit} bytes (its max_message_bytes)')
        try:
            msg = decode(views)
        except WireError as e:
            raise Refused(MALFORMED, str(e)) from e
        if msg.kind == 'hello':
            self._hello(sock, identity, msg.meta)
            return
        robot = self._heard(identity)
        if robot is None:
            raise Refused(HELLO_FIRST, 'no valid hello from this peer (or the learner restarted): say hello first',
                          permanent=False)
        if msg.kind == 'chunk':
            self._chunk(sock, identity, robot, msg)
        elif msg.kind == 'ping':
            self._reply(sock, identity, Message('pong'))
        elif msg.kind == 'bundle_ack':
            self._bundle_ack(robot, msg.meta)
        else:
            raise Refused(UNEXPECTED, f'a robot does not send {msg.kind!r} messages')

    def _heard(self, identity: bytes) -> _Robot | None:
        with self._robots_lock:
            robot = self._robots.get(identity)
            if robot is not None:
                robot.heard = time.monotonic()
            return robot

    def _hello(self, sock: zmq.Socket, identity: bytes, meta: dict) -> None:
        with self._robots_lock:
            before = self._robots.pop(identity, None)      # a hello that fails revokes the last one
        cfg = self.config
        hello = check_hello(meta, identity.decode(errors='replace'), cfg.state_keys, cfg.action_dim)
        if self.accept_hello is not None:
            self.accept_hello(hello)
        with self._robots_lock:
            self._robots[identity] = _Robot(hello, time.monotonic())
            while len(self._robots) > cfg.max_robots:
                silent = min(self._robots, key=lambda i: self._robots[i].heard)
                log.warning('more than %d robots: forgetting the hello of %s', cfg.max_robots, _name(silent))
                del self._robots[silent]
        if before is None or before.hello != hello:
            log.info('robot %s said hello (reward source %s)', hello.robot_id, hello.reward_source or 'not given')
        self._reply(sock, identity, Message('welcome', {'max_message_bytes': cfg.max_message_bytes,
                                                        'max_chunk_steps': cfg.max_chunk_steps}))

    def _chunk(self, sock: zmq.Socket, identity: bytes, robot: _Robot, msg: Message) -> None:
        chunk_id = check_chunk(msg.meta, msg.arrays, robot.hello, self.config.max_chunk_steps)
        if self.is_stored(chunk_id):
            self.duplicates += 1
        else:
            try:
                self.store(chunk_id, msg.meta, msg.arrays)
            except OSError as e:               # not acknowledged: the robot keeps it and resends it
                raise Refused(STORE_FAILED, f'chunk {chunk_id} could not be written ({e})', permanent=False) from e
            self.chunks_stored += 1
        self._reply(sock, identity, Message('ack', {'chunk_ids': [chunk_id]}))

    def _bundle_ack(self, robot: _Robot, meta: dict) -> None:
        version, stored, reason = check_bundle_ack(meta)
        robot_id = robot.hello.robot_id
        if stored:
            self.bundle_acks[robot_id] = version
        else:                                           # it could not build it: send everything next time
            self.bundle_acks.pop(robot_id, None)
            log.warning('robot %s could not store bundle %s: %s', robot_id, version[:80], reason[:300])


def _name(identity: bytes) -> str:
    """A peer for a log line: its robot id, or the hex of an identity that is not one."""
    text = identity.decode(errors='replace')
    return f'robot {text}' if _is_id(text) else f'peer 0x{identity.hex()[:32]}'


def _is_id(value: object) -> bool:
    return isinstance(value, str) and ID.fullmatch(value) is not None


def _manifest_hashes(manifest: bytes) -> dict[str, str]:
    """The sha256 of each file as the bundle's manifest lists them (models/bundle.py writes them at export):
    no need to hash a 150 MB text encoder again for every push. Anything else is hashed here."""
    try:
        files = json.loads(manifest).get('files', {}) if manifest else {}
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
