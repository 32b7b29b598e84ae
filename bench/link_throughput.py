"""Transitions per second from the robot side to the learner over loopback, with 128x128 rgb8 images.

Rows (same run):
  raw pyzmq (baseline)       DEALER -> ROUTER, one 128x128x3 frame per message, no persistence, no acks
  link, chunks of K          LinkClient -> LinkServer: each chunk persisted in the robot's outbox (survives a
                             crash of any process; with fsync also a power cut) before it is sent, stored by
                             the learner, acknowledged, removed from the outbox

  .venv/bin/python bench/link_throughput.py [--transitions 20000] [--chunk 50]
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from lamp_ros.contract import STATE_KEYS
from lamp_ros.link.learner_server import LinkServer, ServerConfig
from lamp_ros.link.robot_client import ClientConfig, LinkClient

SIZE = 128


def raw_zmq(n: int) -> float:
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port('tcp://127.0.0.1')
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f'tcp://127.0.0.1:{port}')
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    got = [0]

    def receive():
        while got[0] < n:
            router.recv_multipart(copy=False)
            got[0] += 1

    t = threading.Thread(target=receive)
    t.start()
    start = time.perf_counter()
    for _ in range(n):
        dealer.send(frame, copy=False)
    t.join()
    elapsed = time.perf_counter() - start
    dealer.close(0)
    router.close(0)
    return n / elapsed


def link(n: int, chunk: int, tmp: Path, fsync: bool = False) -> tuple[float, float]:
    stored = {}
    lock = threading.Lock()

    def store(chunk_id, meta, arrays):
        with lock:
            stored[chunk_id] = len(arrays['action'])

    def is_stored(chunk_id):
        with lock:
            return chunk_id in stored

    server = LinkServer(ServerConfig(endpoint='tcp://127.0.0.1:*', max_message_bytes=64 << 20), store, is_stored)
    client = LinkClient(ClientConfig(endpoint=server.endpoint, outbox_dir=tmp / 'outbox', bundle_dir=tmp / 'b',
                                     window=64, fsync=fsync))
    rng = np.random.default_rng(0)
    arrays = {'image_front': rng.integers(0, 255, (chunk, SIZE, SIZE, 3), dtype=np.uint8),
              'image_stamp': np.zeros(chunk, np.float64), 'state': np.zeros((chunk, len(STATE_KEYS)), np.float32),
              'action': np.zeros((chunk, 4), np.float32), 'reward': np.zeros(chunk, np.float32),
              'intervention': np.zeros(chunk, bool)}
    while not client.connected:
        time.sleep(0.01)
    start = time.perf_counter()
    for i in range(n // chunk):
        client.send({'episode': 'robot-e', 'first_step': i * chunk, 'instruction': '', 'last': None}, arrays)
    persisted = time.perf_counter() - start
    while client.backlog:
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    total = sum(stored.values())
    client.close()
    server.close()
    assert total == (n // chunk) * chunk, (total, n)
    return total / elapsed, total / persisted


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--transitions', type=int, default=20000)
    p.add_argument('--chunk', type=int, nargs='+', default=[10, 50, 200])
    args = p.parse_args()
    base = raw_zmq(args.transitions)
    rows = [('raw pyzmq, 1 frame/message (baseline)', base, None)]
    for k, fsync in [(k, False) for k in args.chunk] + [(50, True)]:
        with tempfile.TemporaryDirectory() as tmp:
            rate, persist_rate = link(args.transitions, k, Path(tmp), fsync)
        rows.append((f'link, chunks of {k} (outbox{" fsync" if fsync else ""} + ack)', rate, persist_rate))
    print(f'\n{args.transitions} transitions, {SIZE}x{SIZE} rgb8 image + state/action/reward each, loopback')
    print(f'{"":<42} {"transitions/s":>14} {"vs baseline":>12} {"outbox writes/s":>16}')
    for label, rate, persist in rows:
        extra = f'{persist:>16,.0f}' if persist else ''
        print(f'{label:<42} {rate:>14,.0f} {rate / base:>11.2f}x {extra}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
