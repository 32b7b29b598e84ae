"""Robot side of the learner link: sends chunks of transitions, receives policy bundles.

One background thread owns the zmq DEALER socket (zmq sockets are not thread-safe). `send` persists the
chunk in the durable outbox first and wakes the thread. The thread says hello (robot id, state fields, action
size, reward source: lamp_ros/link/schema.py) until the learner welcomes it, then sends pending chunks (a
window of un-acked chunks in flight) and pings; after an outage, or when the learner answers `hello_first`
(it restarted), it says hello again. A learner that comes back gets the whole backlog, oldest first.
A chunk the learner refuses for good (or one over the size limit its welcome announced) is set aside in the
outbox (`.refused`, kept on disk, out of the backlog) with one log line per kind of refusal; a transient
refusal is retried. Bundles are written to disk atomically and handed to `on_bundle` from a separate worker
thread, so validating one never stalls the link.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import zmq

from lamp_ros.contract import ACTION_DIM, STATE_KEYS
from lamp_ros.core.fault_log import FaultLog
from lamp_ros.link.keys import CurveKeys
from lamp_ros.link.outbox import Outbox, frames_size
from lamp_ros.link.refusal import HELLO_FIRST, TOO_LARGE
from lamp_ros.link.schema import Hello
from lamp_ros.link.wire import Message, WireError, decode, encode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str = 'tcp://127.0.0.1:5555'
    robot_id: str = 'robot'
    outbox_dir: Path = Path('outbox')
    bundle_dir: Path = Path('bundles')
    window: int = 32                  # chunks in flight without an ack
    ping_interval_s: float = 0.5
    timeout_s: float = 2.0            # no word from the learner for this long -> disconnected
    resend_after_s: float = 5.0       # an un-acked chunk is sent again after this long
    fsync: bool = False               # outbox survives power cuts too (slower), see Outbox
    keys: CurveKeys | None = None     # this robot's key pair
    server_public_key: bytes | None = None
    state_keys: tuple[str, ...] = STATE_KEYS     # announced in the hello: what the chunks' state holds
    action_dim: int = ACTION_DIM
    reward_source: str = ''           # announced in the hello (task, r3m, clip, success); '' = not said
    cameras: tuple[str, ...] = ('front',)        # announced in the hello: the images each step carries
    sim_version: str = ''             # announced in the hello by a simulated robot (sim.SIM_VERSION)


class LinkClient:
    def __init__(self, config: ClientConfig, on_bundle: Callable[[str, Path], None] | None = None) -> None:
        if (config.keys is None) != (config.server_public_key is None):
            raise ValueError('CurveZMQ needs both the robot key pair and the learner public key (or neither)')
        self.config = config
        self.outbox = Outbox(config.outbox_dir, fsync=config.fsync)
        self.on_bundle = on_bundle
        self.connected = False            # welcomed by the learner, and heard from within timeout_s
        self.chunks_sent = 0
        self.chunks_acked = 0
        self.chunks_refused = 0           # set aside: refused for good by the learner
        self.bundles_received = 0
        self.max_message_bytes: int | None = None    # from the learner's welcome
        self.faults = FaultLog(log, 'refusal or fault')
        self._hello = Hello(config.robot_id, tuple(config.state_keys), config.action_dim, config.reward_source,
                            tuple(config.cameras), sim_version=config.sim_version)
        self._ctx = zmq.Context.instance()
        self._wake_addr = f'inproc://lamp-link-wake-{id(self)}'
        self._wake_rx = self._ctx.socket(zmq.PAIR)
        self._wake_rx.bind(self._wake_addr)
        self._wake_tx = self._ctx.socket(zmq.PAIR)
        self._wake_tx.connect(self._wake_addr)
        self._wake_lock = threading.Lock()
        self._stop = threading.Event()
        self._bundles: queue.Queue[tuple[str, Path] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name='link-io', daemon=True)
        self._worker = threading.Thread(target=self._bundle_worker, name='link-bundles', daemon=True)
        self._thread.start()
        self._worker.start()

    # --- caller side ---------------------------------------------------------------------------------
    def send(self, meta: dict, arrays: dict[str, np.ndarray]) -> str:
        """Persist a chunk (returns its id once it is on disk) and let the link thread send it."""
        chunk_id = self.outbox.new_id()
        meta = {**meta, 'robot_id': self.config.robot_id, 'chunk_id': chunk_id}
        self.outbox.put(chunk_id, encode(Message('chunk', meta, arrays)))
        with self._wake_lock:
            self._wake_tx.send(b'', zmq.NOBLOCK)
        return chunk_id

    @property
    def backlog(self) -> int:
        """Chunks on disk not yet acknowledged by the learner."""
        return len(self.outbox)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._bundles.put(None)
        self._worker.join(timeout=5)
        self._wake_tx.close(linger=0)
        self._wake_rx.close(linger=0)

    # --- link thread ---------------------------------------------------------------------------------
    def _socket(self) -> zmq.Socket:
        cfg = self.config
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, cfg.robot_id.encode())
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)          # queue nothing for a learner that is not connected
        if cfg.keys is not None:
            s.curve_publickey, s.curve_secretkey = cfg.keys.public, cfg.keys.secret
            s.curve_serverkey = cfg.server_public_key
        s.connect(cfg.endpoint)
        return s

    def _run(self) -> None:
        cfg = self.config
        sock = self._socket()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_rx, zmq.POLLIN)
        in_flight: dict[str, float] = {}
        last_ping, last_heard = 0.0, float('-inf')
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - last_ping >= cfg.ping_interval_s:
                    self._try_send(sock, self._greeting())
                    self.faults.sweep()
                    last_ping = now
                if self.connected and now - last_heard > cfg.timeout_s:
                    self._lost(in_flight)
                    log.warning('learner %s not answering: buffering transitions on disk (%d pending)',
                                cfg.endpoint, len(self.outbox))
                if self.connected:
                    self._send_pending(sock, in_flight, now)
                for s, _ in poller.poll(timeout=20):
                    if s is self._wake_rx:
                        while self._wake_rx.poll(0):
                            self._wake_rx.recv()
                        continue
                    while sock.poll(0):
                        frames = sock.recv_multipart(copy=False)
                        last_heard = time.monotonic()
                        self._handle(sock, frames, in_flight)
        finally:
            sock.close(linger=0)

    def _greeting(self) -> list:
        """A ping once welcomed, else a hello (again after an outage or a learner restart)."""
        if self.connected:
            return encode(Message('ping', {'robot_id': self.config.robot_id, 'backlog': len(self.outbox)}))
        return encode(Message('hello', self._hello.meta()))

    def _lost(self, in_flight: dict[str, float]) -> None:
        self.connected = False
        in_flight.clear()                 # resend everything once welcomed again

    def _try_send(self, sock: zmq.Socket, frames: list) -> bool:
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    def _send_pending(self, sock: zmq.Socket, in_flight: dict[str, float], now: float) -> None:
        for chunk_id, t in list(in_flight.items()):
            if now - t > self.config.resend_after_s:
                del in_flight[chunk_id]
        if len(in_flight) >= self.config.window:
            return
        for chunk_id, _ in self.outbox.pending():
            if chunk_id in in_flight:
                continue
            frames = self.outbox.load(chunk_id)
            if frames is None or self._over_limit(chunk_id, frames):
                continue
            if not self._try_send(sock, frames):
                return
            in_flight[chunk_id] = now
            self.chunks_sent += 1
            if len(in_flight) >= self.config.window:
                return

    def _over_limit(self, chunk_id: str, frames: list) -> bool:
        """A chunk the learner would refuse for its size (its welcome said the limit) is set aside unsent."""
        size = frames_size(frames)
        if self.max_message_bytes is None or size <= self.max_message_bytes:
            return False
        self._set_aside(chunk_id, TOO_LARGE, f'chunk of {size} bytes, over the learner\'s limit of '
                                             f'{self.max_message_bytes} (its max_message_bytes)')
        return True

    def _set_aside(self, chunk_id: str, code: str, reason: str) -> None:
        if self.outbox.set_aside(chunk_id):
            self.chunks_refused += 1
            self.faults.fault('learner', code, f'{reason}; chunk {chunk_id} set aside in {self.outbox.directory} '
                                               '(*.refused)')

    def _handle(self, sock: zmq.Socket, frames: list, in_flight: dict[str, float]) -> None:
        try:
            msg = decode(frames)
        except WireError as e:
            self.faults.fault('learner', 'malformed', f'ignoring a malformed message from the learner: {e}')
            return
        if msg.kind == 'welcome':
            self._welcomed(msg.meta)
        elif msg.kind == 'refused':
            self._refused(sock, msg.meta, in_flight)
        elif msg.kind == 'ack':
            for chunk_id in msg.meta.get('chunk_ids', []):
                in_flight.pop(chunk_id, None)
                if self.outbox.ack(chunk_id):
                    self.chunks_acked += 1
        elif msg.kind == 'bundle':
            version = str(msg.meta.get('version', ''))
            path, problem = self._store_bundle(version, msg.blobs, str(msg.meta.get('base', '')),
                                               dict(msg.meta.get('reuse', {})))
            if problem:
                log.error('bundle %r not stored: %s', version, problem)
            self._try_send(sock, encode(Message('bundle_ack', {'version': version, 'robot_id': self.config.robot_id,
                                                               'stored': path is not None, 'reason': problem})))
            if path is not None:
                self.bundles_received += 1
                self._bundles.put((version, path))

    def _welcomed(self, meta: dict) -> None:
        limit = meta.get('max_message_bytes')
        self.max_message_bytes = limit if isinstance(limit, int) and limit > 0 else None
        if not self.connected:
            log.info('learner %s connected (%d chunks pending)', self.config.endpoint, len(self.outbox))
        self.connected = True

    def _refused(self, sock: zmq.Socket, meta: dict, in_flight: dict[str, float]) -> None:
        """hello_first: introduce ourselves again; a permanent refusal of a chunk: set it aside; a transient
        one: it is resent after resend_after_s."""
        code, reason, chunk_id = str(meta.get('code')), str(meta.get('reason')), str(meta.get('chunk_id') or '')
        if code == HELLO_FIRST:
            self._lost(in_flight)
            self._try_send(sock, self._greeting())
        elif chunk_id and meta.get('permanent') is True:
            in_flight.pop(chunk_id, None)
            self._set_aside(chunk_id, code, reason)
            return
        self.faults.fault('learner', code, reason)

    def _store_bundle(self, version: str, files: dict[str, bytes], base: str,
                      reuse: dict[str, str]) -> tuple[Path | None, str]:
        """Write a pushed bundle to bundle_dir/<version>/ via a temporary directory and one rename; files the
        learner left out (`reuse`: path -> path in the `base` version) are hard-linked (or copied) from there.
        Returns (path, '') or (None, why not)."""
        if not version or '/' in version or version.startswith('.'):
            return None, f'unusable version name {version!r}'
        root = Path(self.config.bundle_dir)
        final, tmp = root / version, root / f'.{version}.partial'
        if final.exists():
            return final, ''
        if reuse and (not base or '/' in base or base.startswith('.') or not (root / base).is_dir()):
            return None, f'it reuses files of bundle {base!r}, which is not here'
        shutil.rmtree(tmp, ignore_errors=True)
        why = _fill_bundle(tmp, files, root / base, reuse)
        if why:
            shutil.rmtree(tmp, ignore_errors=True)
            return None, why
        tmp.rename(final)
        return final, ''

    def _bundle_worker(self) -> None:
        while True:
            item = self._bundles.get()
            if item is None:
                return
            if self.on_bundle is not None:
                self.on_bundle(*item)


def _fill_bundle(tmp: Path, files: dict[str, bytes], base_dir: Path, reuse: dict[str, str]) -> str:
    """Write the pushed files into tmp and link the reused ones from base_dir; why not ('' when done). No path
    may leave tmp, and no reused file may come from outside base_dir."""
    for rel, source in [(rel, None) for rel in files] + [(rel, base_dir / old) for rel, old in reuse.items()]:
        target = (tmp / rel).resolve()
        if not str(target).startswith(str(tmp.resolve()) + '/'):
            return f'file path {rel!r} escapes the bundle'
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_bytes(files[rel])
        elif not source.is_file() or not source.resolve().is_relative_to(base_dir.resolve()):
            return f'{source} (reused for {rel}) is missing'
        else:
            _link_or_copy(source, target)
    return ''


def _link_or_copy(source: Path, target: Path) -> None:
    """An unchanged file of the previous bundle: a hard link costs nothing (bundles are never edited in place;
    the policy node verifies every file's hash against the manifest before it runs a bundle)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
