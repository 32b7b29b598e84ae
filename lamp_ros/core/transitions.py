"""Turning the robot's control steps into transitions for the learner, in chunks.

A step is (image o_t the policy saw, robot state, the action the safety layer applied, intervention flag).
Its reward is the reward of the NEXT frame o_{t+1} (what the action led to), which the reward node (or the
simulator) publishes stamped with that frame's stamp, a little later. A step leaves in a chunk once that
reward arrived, or with NaN once `reward_timeout_s` passed (counted, never silently dropped). The episode's
last chunk carries the final frame o_T, success and the operator's label. ROS-free.

Further cameras the policy sees (e.g. the wrist's) travel beside the front image: `image_<camera>` per step
and `final_image_<camera>` in the last chunk (the front camera's keys are `image_front` and `final_image`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRONT = 'front'


def image_key(camera: str) -> str:
    """A chunk's per-step images of `camera`."""
    return f'image_{camera}'


def final_image_key(camera: str) -> str:
    """A last chunk's final frame o_T of `camera` ('final_image' for the front camera, as it always was)."""
    return 'final_image' if camera == FRONT else f'final_image_{camera}'


@dataclass
class Step:
    image: np.ndarray
    image_stamp: float
    state: np.ndarray
    action: np.ndarray
    intervention: bool
    t: float                                  # when the step was recorded (for the reward timeout)
    reward: float = math.nan
    more_images: dict[str, np.ndarray] = field(default_factory=dict)    # further cameras, same moment


@dataclass
class EpisodeBuffer:
    key: str
    instruction: str
    steps: list[Step] = field(default_factory=list)
    sent: int = 0                             # steps already sent


class TransitionAssembler:
    def __init__(self, robot_id: str, chunk_steps: int = 10, reward_timeout_s: float = 2.0,
                 reward_history: int = 256, rewards_from_success: bool = False) -> None:
        """`rewards_from_success`: the learner rewards the episode's success (the 'success' reward source), so
        steps carry 0 and wait for no reward message."""
        if chunk_steps < 1:
            raise ValueError(f'chunk_steps must be >= 1, got {chunk_steps}')
        self.robot_id, self.chunk_steps, self.reward_timeout_s = robot_id, chunk_steps, reward_timeout_s
        self.reward_history = reward_history
        self.rewards_from_success = rewards_from_success
        self.rewards: dict[float, float] = {}              # image stamp -> reward
        self.episode: EpisodeBuffer | None = None
        self.steps_recorded = 0
        self.rewards_missing = 0
        self._session = f'{np.random.default_rng().integers(1 << 48):012x}'
        self._episodes = 0

    # --- inputs --------------------------------------------------------------------------------------
    def start(self, instruction: str) -> None:
        self._episodes += 1
        self.episode = EpisodeBuffer(f'{self.robot_id}-{self._session}-{self._episodes:05d}', instruction)

    def on_reward(self, image_stamp: float, reward: float) -> None:
        self.rewards[image_stamp] = reward
        if len(self.rewards) > self.reward_history:
            for stamp in sorted(self.rewards)[:len(self.rewards) - self.reward_history]:
                del self.rewards[stamp]

    def on_step(self, t: float, image: np.ndarray, image_stamp: float, state: np.ndarray, action: np.ndarray,
                intervention: bool, more_images: dict[str, np.ndarray] | None = None) -> None:
        """`more_images`: the further cameras' images of the same moment (e.g. {'wrist': ...})."""
        if self.episode is None:
            return
        self.episode.steps.append(Step(image, image_stamp, np.asarray(state, np.float32),
                                       np.asarray(action, np.float32), intervention, t,
                                       0.0 if self.rewards_from_success else math.nan, dict(more_images or {})))
        self.steps_recorded += 1

    @property
    def last_image_stamp(self) -> float | None:
        """Stamp of the image the latest recorded step acted on (None: no step yet)."""
        return self.episode.steps[-1].image_stamp if self.episode is not None and self.episode.steps else None

    # --- output --------------------------------------------------------------------------------------
    def ready_chunks(self, now: float) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """Chunks of steps whose rewards are known (or timed out), while the episode runs."""
        ep = self.episode
        if ep is None:
            return []
        self._fill_rewards(ep, now)
        chunks = []
        while True:
            done = ep.sent
            while done < len(ep.steps) and not math.isnan(ep.steps[done].reward):
                done += 1
            if done - ep.sent < self.chunk_steps:
                return chunks
            chunks.append(self._chunk(ep, ep.sent, ep.sent + self.chunk_steps, last=None))
            ep.sent += self.chunk_steps

    def stop(self, now: float, final_image: np.ndarray | None, final_stamp: float, final_state: np.ndarray | None,
             success: bool, label: str, final_more_images: dict[str, np.ndarray] | None = None
             ) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """Everything left of the episode, the last chunk carrying o_T (of every camera), success and label."""
        ep, self.episode = self.episode, None
        if ep is None or not ep.steps:
            return []
        if final_image is not None:
            ep.steps.append(Step(final_image, final_stamp, np.asarray(final_state, np.float32),
                                 np.zeros(4, np.float32), False, now,      # o_T: only its image/state/reward count
                                 0.0 if self.rewards_from_success else math.nan, dict(final_more_images or {})))
        self._fill_rewards(ep, now + self.reward_timeout_s + 1)            # whatever has not come now won't
        final = ep.steps.pop() if final_image is not None else None
        chunks = []
        while len(ep.steps) - ep.sent > self.chunk_steps:
            chunks.append(self._chunk(ep, ep.sent, ep.sent + self.chunk_steps, last=None))
            ep.sent += self.chunk_steps
        last = {'success': bool(success), 'label': label, 'steps': len(ep.steps)}
        meta, arrays = self._chunk(ep, ep.sent, len(ep.steps), last=last)
        if final is not None:
            arrays['final_image'] = final.image[None]
            arrays['final_state'] = final.state[None]
            arrays.update({final_image_key(cam): image[None] for cam, image in final.more_images.items()})
        chunks.append((meta, arrays))
        return chunks

    # --- helpers -------------------------------------------------------------------------------------
    def _fill_rewards(self, ep: EpisodeBuffer, now: float) -> None:
        for i in range(ep.sent, len(ep.steps)):
            step = ep.steps[i]
            if not math.isnan(step.reward):
                continue
            nxt = ep.steps[i + 1] if i + 1 < len(ep.steps) else None
            if nxt is not None and nxt.image_stamp in self.rewards:
                step.reward = self.rewards[nxt.image_stamp]
            elif now - step.t > self.reward_timeout_s and nxt is not None:
                step.reward = math.inf                                      # marker: timed out

    def _chunk(self, ep: EpisodeBuffer, start: int, end: int, last: dict | None
               ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        steps = ep.steps[start:end]
        rewards = self._chunk_rewards(steps)
        meta = {'episode': ep.key, 'instruction': ep.instruction, 'first_step': start, 'last': last,
                'rewards_missing': int(np.isnan(rewards).sum())}
        return meta, {**_step_arrays(steps, ep.steps[0]), 'reward': rewards}

    def _chunk_rewards(self, steps: list[Step]) -> np.ndarray:
        """The steps' rewards, NaN (and counted) where none arrived in time."""
        rewards = np.array([s.reward for s in steps], np.float32)
        missing = ~np.isfinite(rewards)
        self.rewards_missing += int(missing.sum())
        rewards[missing] = np.nan
        return rewards


def _stacked(values: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    """values stacked on a new first axis; an empty chunk keeps `like`'s shape and dtype (0, *like.shape)."""
    return np.stack(values) if values else like[None][:0]


def _step_arrays(steps: list[Step], like: Step) -> dict[str, np.ndarray]:
    """A chunk's per-step arrays but the reward; `like` (the episode's first step) shapes an empty last chunk."""
    arrays = {image_key(FRONT): _stacked([s.image for s in steps], like.image),
              'image_stamp': np.array([s.image_stamp for s in steps], np.float64),
              'state': _stacked([s.state for s in steps], like.state),
              'action': _stacked([s.action for s in steps], np.zeros(4, np.float32)),
              'intervention': np.array([s.intervention for s in steps], bool)}
    for cam, image in like.more_images.items():
        arrays[image_key(cam)] = _stacked([s.more_images[cam] for s in steps], image)
    return arrays
