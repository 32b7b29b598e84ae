"""reward node: the video-language reward r_t = R(o_0, o_t, l) of camera frames, for finetuning on the robot.

Subscribes to camera/image_raw, instruction (latched) and episode/event ('start': the next image is the
episode's first frame o_0; 'stop': after stop_grace_s, which still covers the episode's last frames, score
nothing until the next 'start'). Publishes on `reward` a
geometry_msgs/Vector3Stamped per scored frame: header = the scored image's header (its stamp), x = reward
(standardized per instruction if enabled), y = raw score, z = the frame's index in the episode (o_0 = 0).
A node started mid-episode takes the first image it receives as o_0 (and says so).

It scores the newest image when one is due at `rate_hz` and skips the rest (never queues). The model runs
in a worker thread: onnxruntime and torch release the GIL, so image, instruction and event callbacks are
never blocked by a slow model; o_0 is embedded once per episode, each instruction once.

Missing weights: the node says so once (what to place where), publishes reward/status `no_weights`, stays up
and publishes no reward. reward/status (latched JSON): state loading/waiting/running/no_weights/refused,
model, name, checkpoint, rate_hz, standardize, instruction, reason.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.core.embedding_cache import EmbeddingCache
from lamp_ros.core.images import ImageRejected, fit_to_size
from lamp_ros.core.instruction import accepted_instruction
from lamp_ros.ros.convert import image_array
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import log_state_change, node_fault_log
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import declare, run_node

MODELS = ('r3m-onnx', 'r3m', 'clip', 'classifier')
EVENT_START, EVENT_STOP = 'start', 'stop'
MIN_IMAGE_SIDE = 32          # smaller images leave a ResNet nothing to look at


class RunningStandardizer:
    """Per-instruction running mean and standard deviation (Welford): rewards of one instruction on one scale."""

    def __init__(self) -> None:
        self._stats: dict[str, tuple[int, float, float]] = {}       # key -> (count, mean, sum of squared deviations)

    def __call__(self, key: str, value: float) -> float:
        """Add `value` to `key`'s statistics and return it standardized (0 until two values are known)."""
        n, mean, m2 = self._stats.get(key, (0, 0.0, 0.0))
        n += 1
        delta = value - mean
        mean += delta / n
        m2 += delta * (value - mean)
        self._stats[key] = (n, mean, m2)
        std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
        return (value - mean) / std if std > 1e-8 else 0.0


class RatePacer:
    """At most `rate_hz` on average, without delaying an image: one is due when it arrives at or after the next
    tick of a 1/rate grid. After a gap the grid restarts rather than letting a burst catch up, and two scored
    images are never closer than half a period."""

    def __init__(self, rate_hz: float) -> None:
        if not rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {rate_hz}')
        self.period_s = 1.0 / rate_hz
        self._next: float | None = None

    def due(self, t: float) -> bool:
        return self._next is None or t >= self._next

    def acted(self, t: float) -> None:
        grid = t + self.period_s if self._next is None else self._next + self.period_s
        self._next = max(grid, t + self.period_s / 2)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray        # uint8 [H, W, 3], owned (copied out of the message)
    stamp: Time
    frame_id: str
    arrival_s: float         # node clock, for pacing
    episode: int
    index: int               # position in the episode (o_0 = 0)


class RewardNode(Node):
    def __init__(self) -> None:
        super().__init__('reward')
        self.model_kind = declare(self, 'model', 'r3m-onnx',
                                  "Reward model: 'r3m-onnx' (onnxruntime, no torch), 'r3m' (torch), 'clip' (torch) "
                                  "or 'classifier' (a success classifier, onnxruntime: lamp-models train-classifier).")
        self.checkpoint = declare(self, 'checkpoint', '',
                                  'Weights directory; empty = the standard place for the model '
                                  '(r3m-onnx: ~/.local/share/lamp_ros/weights/r3m/resnet50_onnx).')
        self.rate_hz = declare(self, 'rate_hz', c.DEFAULT_CONTROL_RATE_HZ,
                               'Scoring rate, Hz: the newest image is scored when due, the others are skipped.')
        self.standardize = declare(self, 'standardize', False,
                                   'Publish x = (score - running mean) / running std, per instruction.')
        self.threads = declare(self, 'threads', 1, 'Inference threads (onnxruntime or torch).')
        self.stop_grace_s = declare(self, 'stop_grace_s', 0.5,
                                    "After 'stop', images arriving this long still belong to the episode (its "
                                    'last frames) and are scored.')
        self.image_size = declare(self, 'image_size', 128,
                                  'Frames are scored at this square size (downscaled if the aspect ratio is 1, '
                                  'LAMP: 128); 0 = as received.')

        self.reward_pub = self.create_publisher(Vector3Stamped, c.REWARD.name, profile(c.REWARD))
        self.status_pub = self.create_publisher(String, c.REWARD_STATUS.name, profile(c.REWARD_STATUS))
        self._status_lock = threading.Lock()
        self.status = {'state': '', 'model': self.model_kind, 'name': '', 'checkpoint': self.checkpoint,
                       'rate_hz': self.rate_hz, 'standardize': self.standardize, 'instruction': '', 'reason': ''}
        self._set_status('loading', f'loading the {self.model_kind} reward model')

        # Shared between the callbacks (executor thread) and the worker; guarded by _wake's lock.
        self._wake = threading.Condition()
        self._episode = 0
        self._first: Frame | None = None           # o_0 of the current episode, not yet embedded
        self._latest: Frame | None = None          # newest image not yet scored
        self._instruction = ''
        self._stopping = False
        self._pacer = RatePacer(self.rate_hz)
        # Callback side only.
        self._next_index = 0
        self._awaiting_first = True
        self._stopped = False
        self._stop_at: float | None = None         # after 'stop': images until then still belong to the episode
        self._first_shape: tuple[int, ...] = ()
        self.images_rejected = 0
        self.faults = node_fault_log(self, 'input refused')
        # Worker side only.
        self.model = None
        self._unusable = False                    # weights missing or refused: ignore everything
        self._e0: tuple[int, np.ndarray] | None = None
        self._lang_text = ''
        self._lang: np.ndarray | None = None
        self._lang_cache: EmbeddingCache | None = None   # the model's, made with it
        self._standardizer = RunningStandardizer()
        self.rewards_published = 0

        self.create_subscription(Image, c.CAMERA_IMAGE.name, self._on_image, profile(c.CAMERA_IMAGE))
        self.create_subscription(String, c.INSTRUCTION.name, self._on_instruction, profile(c.INSTRUCTION))
        self.create_subscription(String, c.EPISODE_EVENT.name, self._on_event, profile(c.EPISODE_EVENT))
        self._worker = threading.Thread(target=self._work, name='reward-model', daemon=True)
        self._worker.start()

    # --- status --------------------------------------------------------------------------------------------
    def health(self) -> Health:
        level = {'running': 'ok', 'waiting': 'ok', 'loading': 'warn'}.get(self.status['state'], 'error')
        return Health(level, f"{self.status['state']}: {self.status['reason']}",
                      {k: self.status[k] for k in ('model', 'name', 'instruction', 'rate_hz')})

    def _set_status(self, state: str, reason: str, **fields: object) -> None:
        with self._status_lock:
            if (state, reason) == (self.status['state'], self.status['reason']) and all(
                    self.status.get(k) == v for k, v in fields.items()):
                return
            self.status.update(state=state, reason=reason, **fields)
            log_state_change(self, 'reward', state, reason, errors=('no_weights', 'refused'))
            self.status_pub.publish(String(data=json.dumps(self.status)))

    # --- callbacks (executor thread): cheap, never touch the model -------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_event(self, msg: String) -> None:
        if self._unusable:
            return
        event = msg.data.strip().lower()
        if event not in (EVENT_START, EVENT_STOP):
            self.faults.fault(c.EPISODE_EVENT.name, 'invalid',
                              f"unknown episode event {msg.data[:40]!r} ignored (expected 'start' or 'stop')")
            return
        if event == EVENT_STOP:
            # the episode's last frames (the one being scored, the one after the last action) arrive around
            # the stop: they are still scored for stop_grace_s, so the learner gets every step's reward
            self._stop_at = self._now() + self.stop_grace_s
            return
        with self._wake:
            self._episode += 1
            self._first, self._latest = None, None
        self._stopped, self._stop_at = False, None
        self._awaiting_first, self._next_index = True, 0
        self.get_logger().info(f'episode start: the next image is o_0 (episode {self._episode})')

    def _on_instruction(self, msg: String) -> None:
        text = accepted_instruction(msg.data, self.faults)
        if text is None:
            return
        with self._wake:
            self._instruction = text
            self._wake.notify()

    def _on_image(self, msg: Image) -> None:
        if self._stop_at is not None and not self._stopped and self._now() > self._stop_at:
            self._stopped = True
            self._set_status('waiting', "episode stopped: waiting for 'start'")
        if self._stopped or self._unusable:
            return
        image = self._scored_image(msg)
        if image is None:
            return
        if self._awaiting_first:
            self._first_shape = image.shape
            if self._episode == 0:
                self.get_logger().info("no 'start' event yet: the first image received is taken as o_0")
        elif image.shape != self._first_shape:                        # possible with image_size 0 only
            self.images_rejected += 1
            self.get_logger().error(f'camera image rejected: {image.shape[1]}x{image.shape[0]} differs from the '
                                    "episode's first frame", throttle_duration_sec=2.0)
            return
        frame = Frame(np.array(image, copy=True), msg.header.stamp, msg.header.frame_id, self._now(), self._episode,
                      self._next_index)
        self._next_index += 1
        with self._wake:
            if self._awaiting_first:
                self._first = frame
            self._latest = frame
            self._wake.notify()
        self._awaiting_first = False

    def _scored_image(self, msg: Image) -> np.ndarray | None:
        """The image at the model's size (image_size > 0) or as it came (large enough); None when rejected."""
        try:
            image = image_array(msg)
            if self.image_size > 0:
                return fit_to_size(image, self.image_size, self.image_size, resize=True)
            if min(image.shape[:2]) < MIN_IMAGE_SIDE:
                raise ImageRejected('too_small',
                                    f'{image.shape[1]}x{image.shape[0]} is smaller than {MIN_IMAGE_SIDE} pixels')
            return image
        except ImageRejected as e:
            self.images_rejected += 1
            self.faults.fault(c.CAMERA_IMAGE.name, e.code, f'camera image rejected: {e}')
            return None

    # --- worker thread: the model ----------------------------------------------------------------------------
    def _due(self) -> bool:
        return self._latest is not None and self._pacer.due(self._latest.arrival_s)

    def _work(self) -> None:
        try:
            self._work_loop()
        except Exception as e:
            self._unusable = True
            self._set_status('refused', f'the reward model failed: {e!r}; see the traceback in the log')
            raise                                   # threading prints the traceback

    def _work_loop(self) -> None:
        if not self._load():
            return
        while (work := self._next_work()) is not None:
            first, text, latest = work
            if first is not None:
                self._e0 = (first.episode, self.model.embed_images(first.image[None]))
            if text != self._lang_text:
                self._use_instruction(text)
            if latest is not None:
                self._score(latest)

    def _next_work(self) -> tuple[Frame | None, str, Frame | None] | None:
        """Wait until there is something to do, and take it: (an episode's first frame or None, the
        instruction, the latest frame if a reward is due or None); None when the node is stopping."""
        with self._wake:
            self._wake.wait_for(lambda: self._stopping or self._first is not None or self._due()
                                or self._instruction != self._lang_text)
            if self._stopping:
                return None
            first, self._first = self._first, None
            latest = self._latest if self._due() else None
            if latest is not None:
                self._latest = None
                self._pacer.acted(latest.arrival_s)
            return first, self._instruction, latest

    def _load(self) -> bool:
        from models.cli import load_reward_model
        from models.r3m.layout import CheckpointError
        from models.r3m.runtime import OnnxExportInvalid
        from models.reward_model import WeightsMissing

        if self.model_kind not in MODELS:
            self._unusable = True
            self._set_status('refused', f"unknown model '{self.model_kind}' (one of {', '.join(MODELS)})")
            return False
        checkpoint = Path(self.checkpoint).expanduser() if self.checkpoint else None
        try:
            if self.model_kind not in ('r3m-onnx', 'classifier'):       # the robot's models run without torch
                import torch
                torch.set_num_threads(self.threads)
            model = load_reward_model(self.model_kind, checkpoint, 'cpu', self.threads)
        except WeightsMissing as e:
            self._unusable = True
            self._set_status('no_weights', str(e))             # said once: the worker ends here
            return False
        except (OnnxExportInvalid, CheckpointError, ValueError) as e:
            self._unusable = True
            self._set_status('refused', f'cannot use the reward model: {e}')
            return False
        self.model = model
        self._lang_cache = EmbeddingCache(lambda text: model.embed_instructions([text]))
        self._set_status('waiting', 'waiting for a camera image and an instruction', name=model.name)
        self.get_logger().info(f'reward model {model.name} ({self.model_kind}) loaded; scoring at {self.rate_hz} Hz'
                               + (', standardized per instruction' if self.standardize else ''))
        return True

    def _use_instruction(self, text: str) -> None:
        self._lang_text, self._lang = text, self._lang_cache(text)
        self.get_logger().info(f"instruction: '{text}'")

    def _score(self, frame: Frame) -> None:
        if self._lang is None:
            self._set_status('waiting', 'waiting for an instruction')
            return
        if self._e0 is None or self._e0[0] != frame.episode:
            return                                  # an image of an episode whose o_0 was never seen
        current = self._e0[1] if frame.index == 0 else self.model.embed_images(frame.image[None])
        raw = float(self.model.score(self._e0[1], current, self._lang)[0])
        value = self._standardizer(self._lang_text, raw) if self.standardize else raw
        if frame.episode != self._episode:
            return                                  # a 'start' came while scoring: nothing of the old episode after it
        msg = Vector3Stamped()
        msg.header.stamp, msg.header.frame_id = frame.stamp, frame.frame_id
        msg.vector.x, msg.vector.y, msg.vector.z = value, raw, float(frame.index)
        self.reward_pub.publish(msg)
        self.rewards_published += 1
        self._set_status('running', f"scoring '{self._lang_text}'", instruction=self._lang_text)

    def on_shutdown(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._worker.join(timeout=2.0)


def main(args: list[str] | None = None) -> int:
    return run_node(RewardNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
