"""Memory of a `lamp-ros learner` process while peers flood it with huge messages, and whether a robot is
still served after.

K peers (DEALER sockets in this process) each send one message of M MB at once to a learner process (debug
preset, its own run directory); the learner's resident memory (VmRSS from /proc) is sampled every 5 ms
from before the flood until 2 s after. Then a real robot link client sends a chunk and must be acknowledged.
With the default limit (4 MiB) libzmq refuses each frame from its length prefix (ZMQ_MAXMSGSIZE), before
buffering it; `--max-message-bytes` above M shows what buffering them costs.

  .venv/bin/python bench/learner_flood.py [--parallel 5] [--mb 200] [--max-message-bytes N]
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from lamp_ros.link.robot_client import ClientConfig, LinkClient


def rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f'no VmRSS for process {pid}')


def start_learner(tmp: Path, endpoint: str, limit: int | None) -> subprocess.Popen:
    cmd = [sys.executable, '-m', 'lamp_ros.cli', 'learner', '--run', str(tmp / 'run'), '--preset', 'debug',
           '--bind', endpoint] + (['--max-message-bytes', str(limit)] if limit else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if 'exported in' in line:                  # its first bundle: from here on it only waits for robots
            threading.Thread(target=proc.stdout.read, daemon=True).start()     # keep draining its output
            return proc
    raise RuntimeError(f'the learner did not start (exit {proc.wait()})')


def flood(endpoint: str, parallel: int, mb: int) -> None:
    ctx, big = zmq.Context.instance(), np.zeros(mb << 20, np.uint8)
    socks = []
    for _ in range(parallel):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.send_multipart([b'chunk', b'{"protocol": 1, "meta": {}, "arrays": [], "blobs": []}', big], copy=False)
    time.sleep(2.0)
    for s in socks:
        s.close(linger=0)


def robot_served(tmp: Path, endpoint: str) -> bool:
    client = LinkClient(ClientConfig(endpoint=endpoint, outbox_dir=tmp / 'outbox', bundle_dir=tmp / 'bundles'))
    try:
        n = 5
        client.send({'episode': 'robot-e', 'first_step': 0, 'instruction': '', 'last': None}, {
            'image_front': np.zeros((n, 64, 64, 3), np.uint8), 'image_stamp': np.zeros(n),
            'state': np.zeros((n, 8), np.float32), 'action': np.zeros((n, 4), np.float32),
            'reward': np.zeros(n, np.float32), 'intervention': np.zeros(n, bool)})
        end = time.monotonic() + 20
        while client.backlog and time.monotonic() < end:
            time.sleep(0.05)
        return client.backlog == 0
    finally:
        client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--parallel', type=int, default=5)
    p.add_argument('--mb', type=int, default=200)
    p.add_argument('--max-message-bytes', type=int, default=None)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        endpoint = f'tcp://127.0.0.1:{s.getsockname()[1]}'
    with tempfile.TemporaryDirectory() as tmp:
        learner = start_learner(Path(tmp), endpoint, args.max_message_bytes)
        try:
            time.sleep(0.5)
            before, peak, done = rss_mb(learner.pid), [0.0], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], rss_mb(learner.pid))
                    time.sleep(0.005)
            sampler = threading.Thread(target=sample)
            sampler.start()
            flood(endpoint, args.parallel, args.mb)
            done.set()
            sampler.join()
            served = robot_served(Path(tmp), endpoint)
        finally:
            learner.terminate()
            learner.wait(30)
    limit = args.max_message_bytes or 'default (4 MiB)'
    print(f'{args.parallel} x {args.mb} MB messages at once, max_message_bytes {limit}: learner RSS {before:.0f} MB '
          f'before, peak {peak[0]:.0f} MB (+{peak[0] - before:.0f} MB); a robot served after: {served}')
    return 0 if served else 1


if __name__ == '__main__':
    raise SystemExit(main())
