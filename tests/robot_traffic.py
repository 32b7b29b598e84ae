"""What robots (and anything else that reaches the learner's port) send, for the learner intake tests:
episodes chunked by the robot's real TransitionAssembler, and a raw zmq peer that sends any frames at all."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import zmq

from lamp_ros.contract import ACTION_DIM, STATE_KEYS
from lamp_ros.core.transitions import TransitionAssembler
from lamp_ros.link.robot_client import ClientConfig, LinkClient
from lamp_ros.link.wire import Message, WireError, decode, encode


def episode_chunks(robot: str = 'robot', steps: int = 12, chunk_steps: int = 5, rewards: bool = True,
                   size: int = 16, seed: int = 0, instruction: str = 'push button', operator: range = range(0),
                   success: bool = True, rewards_from_success: bool = False, wrist: bool = False
                   ) -> list[tuple[dict, dict]]:
    """One episode of `steps` control steps as the actor sends it (rewards=False: the reward source sent none;
    the steps in `operator` are flagged as interventions; wrist: each step carries a wrist image too)."""
    rng = np.random.default_rng(seed)
    a = TransitionAssembler(robot, chunk_steps, reward_timeout_s=0.5, rewards_from_success=rewards_from_success)
    a.start(instruction)
    state = np.array([0.4, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 1.0], np.float32)
    for t in range(steps + 1):
        if rewards and not rewards_from_success:
            a.on_reward(float(t), t / steps)
        if t < steps:
            a.on_step(0.0, rng.integers(0, 255, (size, size, 3), dtype=np.uint8), float(t), state,
                      rng.uniform(-1, 1, ACTION_DIM).astype(np.float32), t in operator, wrist_image(rng, wrist))
    final = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    return a.ready_chunks(0.0) + a.stop(0.0, final, float(steps), state, success=success, label='',
                                        final_more_images=wrist_image(rng, wrist))


def wrist_image(rng: np.random.Generator, wrist: bool) -> dict[str, np.ndarray]:
    """A wrist image of another size than the front's (real cameras differ), or none."""
    return {'wrist': rng.integers(0, 255, (12, 20, 3), dtype=np.uint8)} if wrist else {}


def robot(tmp: Path, endpoint: str, robot_id: str = 'robot', on_bundle=None, **kw) -> LinkClient:
    """A robot's real link client (fast pings, so tests need not wait long for it)."""
    return LinkClient(ClientConfig(endpoint=endpoint, robot_id=robot_id, outbox_dir=tmp / robot_id / 'outbox',
                                   bundle_dir=tmp / robot_id / 'bundles', ping_interval_s=0.1, timeout_s=1.0, **kw),
                      on_bundle=on_bundle)


def free_port() -> int:
    """A TCP port nothing listens on now (for a learner's --bind)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def hello_meta(robot_id: str, reward_source: str = '') -> dict:
    return {'robot_id': robot_id, 'state_keys': list(STATE_KEYS), 'action_dim': ACTION_DIM,
            'reward_source': reward_source}


class RawPeer:
    """A zmq DEALER that sends whatever frames it is given and reads what the learner answers."""

    def __init__(self, endpoint: str, identity: bytes) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, frames: list) -> None:
        self.sock.send_multipart(frames, copy=True)

    def say(self, kind: str, meta: dict, arrays: dict | None = None) -> None:
        self.send(encode(Message(kind, meta, arrays or {})))

    def replies(self, timeout: float = 1.0, count: int | None = None) -> list[Message]:
        """Messages received within `timeout` (returns early once `count` are in)."""
        out, end = [], time.monotonic() + timeout
        while time.monotonic() < end and (count is None or len(out) < count):
            if self.sock.poll(10):
                frames = self.sock.recv_multipart()
                try:
                    out.append(decode(frames))
                except WireError as e:
                    raise AssertionError(f'the learner sent a malformed message: {e}') from e
        return out

    def close(self) -> None:
        self.sock.close(linger=0)
