"""Learner side of the link: receives chunks of transitions from robots, stores them (durably, through the
`store` callback) before acknowledging, and pushes policy bundles to the robots.

One background thread owns the zmq ROUTER socket. A chunk is acknowledged only after `store` returned, and
`store` must be idempotent on chunk ids (a robot resends what was not acknowledged; a duplicate is
acknowledged again without being stored twice). With CurveZMQ keys, only robots whose public key is in the
authorized directory can connect; others are refused by the handshake and logged.
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

from lamp_ros.link.keys import CurveKeys
from lamp_ros.link.wire import Message, WireError, decode, encode

log = logging.getLogger(__name__)

MANIFEST_FILE = 'manifest.json'        # always sent: it names the version's files and their hashes
PUSHED_VERSIONS_KEPT = 8


@dataclass(frozen=True)
class BundleOffer:
    version: str
    files: dict[str, bytes]                # path in the bundle -> content
    hashes: dict[str, str]                 # path -> sha256


Store = Callable[[str, dict, dict[str, np.ndarray]], None]   # (chunk id, meta, arrays); idempotent, durable


@dataclass(frozen=True)
class ServerConfig:
    endpoint: str = 'tcp://127.0.0.1:5555'
    keys: CurveKeys | None = None              # the learner's key pair
    authorized_dir: Path | None = None         # public keys of the robots allowed in
    robot_timeout_s: float = 5.0               # a robot silent for this long is no longer pushed bundles


class LinkServer:
    def __init__(self, config: ServerConfig, store: Store, is_stored: Callable[[str], bool]) -> None:
        if (config.keys is None) != (config.authorized_dir is None):
            raise ValueError('CurveZMQ needs both the learner key pair and the authorized robot keys (or neither)')
        self.config = config
        self.store, self.is_stored = store, is_stored
        self.chunks_stored = 0
        self.duplicates = 0
        self.robots: dict[str, float] = {}               # robot id -> last heard (monotonic)
        self.bundle_acks: dict[str, str] = {}            # robot id -> last bundle version acknowledged
        self.endpoint = config.endpoint
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

    def push_bundle(self, bundle_dir: Path, version: str) -> int:
        """Queue a bundle for every robot heard from recently; returns how many robots it goes to.

        A robot that acknowledged an earlier bundle of this learner gets only the files whose content changed
        (a finetuned policy: the few-MB ONNX policy, not the unchanged ~150 MB text encoder) and reuses the
        rest from that bundle on its disk; any other robot gets every file."""
        root = Path(bundle_dir)
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}
        listed = _manifest_hashes(files.get(MANIFEST_FILE, b''))
        hashes = {rel: listed.get(rel) or hashlib.sha256(data).hexdigest() for rel, data in files.items()}
        offer = BundleOffer(version, files, hashes)
        self._outgoing.put(offer)
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
        if cfg.keys is not None:
            self._auth = ThreadAuthenticator(self._ctx, log=log.getChild('auth'))
            self._auth.start()
            self._auth.configure_curve(domain='*', location=str(cfg.authorized_dir))
            s.curve_publickey, s.curve_secretkey = cfg.keys.public, cfg.keys.secret
            s.curve_server = True
        s.bind(cfg.endpoint)
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
            while not self._stop.is_set():
                while not self._outgoing.empty():
                    self._send_bundle(sock, self._outgoing.get())
                if not sock.poll(20):
                    continue
                while sock.poll(0):
                    identity, *frames = sock.recv_multipart(copy=False)
                    self._handle(sock, identity.bytes, frames)
        finally:
            sock.close(linger=0)

    def _reply(self, sock: zmq.Socket, identity: bytes, msg: Message) -> None:
        try:
            sock.send_multipart([identity] + encode(msg), flags=zmq.NOBLOCK, copy=False)
        except (zmq.Again, zmq.ZMQError) as e:
            log.warning('could not answer robot %r: %s', identity, e)

    def _send_bundle(self, sock: zmq.Socket, offer: BundleOffer) -> None:
        self._pushed[offer.version] = offer.hashes
        while len(self._pushed) > PUSHED_VERSIONS_KEPT:
            self._pushed.pop(next(iter(self._pushed)))
        now = time.monotonic()
        for robot, heard in list(self.robots.items()):
            if now - heard >= self.config.robot_timeout_s:
                continue
            base = self.bundle_acks.get(robot, '')
            by_hash = {digest: rel for rel, digest in self._pushed.get(base, {}).items()} if base else {}
            reuse = {rel: by_hash[d] for rel, d in offer.hashes.items() if d in by_hash and rel != MANIFEST_FILE}
            blobs = {rel: data for rel, data in offer.files.items() if rel not in reuse}
            meta = {'version': offer.version, 'base': base if reuse else '', 'reuse': reuse}
            self._reply(sock, robot.encode(), Message('bundle', meta, blobs=blobs))
            self.bundle_bytes_sent += sum(len(b) for b in blobs.values())

    def _handle(self, sock: zmq.Socket, identity: bytes, frames: list) -> None:
        robot = identity.decode(errors='replace')
        self.robots[robot] = time.monotonic()
        try:
            msg = decode(frames)
        except WireError as e:
            log.error('malformed message from robot %r ignored: %s', robot, e)
            return
        if msg.kind in ('ping', 'hello'):
            self._reply(sock, identity, Message('pong', {'backlog_seen': msg.meta.get('backlog')}))
        elif msg.kind == 'chunk':
            chunk_id = str(msg.meta.get('chunk_id', ''))
            if not chunk_id:
                log.error('chunk without an id from robot %r ignored', robot)
                return
            if self.is_stored(chunk_id):
                self.duplicates += 1
            else:
                try:
                    self.store(chunk_id, msg.meta, msg.arrays)
                except (OSError, ValueError) as e:     # not acknowledged: the robot keeps it and resends it
                    log.error('storing chunk %s from robot %r failed (%s); not acknowledged', chunk_id, robot, e)
                    return
                self.chunks_stored += 1
            self._reply(sock, identity, Message('ack', {'chunk_ids': [chunk_id]}))
        elif msg.kind == 'bundle_ack':
            if msg.meta.get('stored', True):
                self.bundle_acks[robot] = str(msg.meta.get('version', ''))
            else:                                           # it could not build it: send everything next time
                self.bundle_acks.pop(robot, None)
                log.warning('robot %r could not store bundle %s: %s', robot, msg.meta.get('version'),
                            msg.meta.get('reason', ''))


def _manifest_hashes(manifest: bytes) -> dict[str, str]:
    """The sha256 of each file as the bundle's manifest lists them (models/bundle.py writes them at export):
    no need to hash a 150 MB text encoder again for every push. Anything else is hashed here."""
    try:
        files = json.loads(manifest).get('files', {}) if manifest else {}
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
