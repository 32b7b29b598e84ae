"""One recorded episode: the messages of its topics as they arrive, aligned into an episode file's arrays at
the end (models.episodes; the layout is documented in docs/recording.md). ROS-free.

One row per control step, as the episode node and the learner count them: a step is an action the safety layer
applied (control/applied_action). Alignment is by header stamps (capture time of a frame, command time of an
action), not by arrival order, so a recorder on another computer (images arriving later than the small action
messages) still pairs each action with the frame the policy saw, whatever the camera's rate:

  step t           the t-th action applied in the episode (actions before the first frame are left out)
  frame t          the newest camera frame captured at or before that action (a camera slower than the control
                   loop repeats a frame); frame T, after the last step, is the episode's newest frame
  state[t]         the robot state nearest in time to frame t (contract.STATE_KEYS: position, orientation,
                   gripper opening; NaN where a part never arrived)
  action[t]        that applied action; intervention[t] whether it was the operator's
  reward[t]        the reward published for frame t (stamped with its image), NaN where none came
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamp_ros.contract import ACTION_DIM, STATE_KEYS


@dataclass(frozen=True)
class Aligned:
    frame_index: np.ndarray       # [T+1] which recorded frame each step saw (and the last frame)
    action: np.ndarray            # [T, ACTION_DIM]
    intervention: np.ndarray      # [T] bool
    before_first_frame: int       # applied actions left out: no frame had been captured yet


@dataclass
class EpisodeRecording:
    number: int                   # the episode node's episode number
    instruction: str
    started_wall: float           # time.time() when it started
    frame_stamps: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    pose_stamps: list[float] = field(default_factory=list)
    poses: list[np.ndarray] = field(default_factory=list)          # x y z qw qx qy qz
    gripper_stamps: list[float] = field(default_factory=list)
    grippers: list[float] = field(default_factory=list)
    action_stamps: list[float] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    interventions: list[bool] = field(default_factory=list)
    rewards: dict[float, float] = field(default_factory=dict)      # image stamp -> reward
    frames_rejected: int = 0
    bag: list[Any] = field(default_factory=list)                   # raw messages for an MCAP bag (optional)

    def add_frame(self, stamp: float, rgb: np.ndarray) -> str:
        """'' if taken, else why not (a frame of another size than the episode's first)."""
        if self.frames and rgb.shape != self.frames[0].shape:
            self.frames_rejected += 1
            return f'frame of shape {rgb.shape} in an episode of {self.frames[0].shape}: dropped'
        if self.frame_stamps and stamp <= self.frame_stamps[-1]:
            self.frames_rejected += 1
            return f'frame stamped {stamp:.3f}, not after the previous frame ({self.frame_stamps[-1]:.3f}): dropped'
        self.frame_stamps.append(stamp)
        self.frames.append(np.array(rgb, dtype=np.uint8, copy=True))
        return ''

    def add_pose(self, stamp: float, position: np.ndarray, quat_wxyz: np.ndarray) -> None:
        self.pose_stamps.append(stamp)
        self.poses.append(np.concatenate([position, quat_wxyz]).astype(np.float32))

    def add_gripper(self, stamp: float, opening: float) -> None:
        self.gripper_stamps.append(stamp)
        self.grippers.append(float(opening))

    def add_action(self, stamp: float, action: np.ndarray, intervention: bool) -> None:
        self.action_stamps.append(stamp)
        self.actions.append(np.asarray(action, dtype=np.float32))
        self.interventions.append(bool(intervention))

    def add_reward(self, image_stamp: float, reward: float) -> None:
        self.rewards[image_stamp] = float(reward)

    # --- alignment -----------------------------------------------------------------------------------
    def states(self) -> np.ndarray | None:
        """[T, len(STATE_KEYS)] float32, or None without any pose."""
        if not self.frames or not self.poses:
            return None
        stamps = np.asarray(self.frame_stamps)
        state = np.full((len(stamps), len(STATE_KEYS)), np.nan, dtype=np.float32)
        state[:, :7] = _values_nearest(self.pose_stamps, self.poses, stamps)
        if self.grippers:
            state[:, 7] = _values_nearest(self.gripper_stamps, self.grippers, stamps)
        return state

    def aligned(self) -> Aligned:
        """The episode's steps (see the module docstring)."""
        frame_stamps = np.asarray(self.frame_stamps)
        order = np.argsort(np.asarray(self.action_stamps), kind='stable')
        frame_of = np.searchsorted(frame_stamps, np.asarray(self.action_stamps)[order], side='right') - 1
        keep = frame_of >= 0
        action = np.array([self.actions[i] for i in order[keep]], np.float32).reshape(-1, ACTION_DIM)
        intervention = np.array([self.interventions[i] for i in order[keep]], bool)
        frame_index = np.append(frame_of[keep], len(self.frames) - 1).astype(int)
        return Aligned(frame_index, action, intervention, int((~keep).sum()))

    def reward_per_frame(self) -> np.ndarray | None:
        """[T] float32 (NaN where no reward came), or None if no frame got one."""
        reward = np.array([self.rewards.get(s, math.nan) for s in self.frame_stamps], dtype=np.float32)
        return None if np.all(np.isnan(reward)) else reward


def nearest(stamps: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into `stamps` (ascending) of the value nearest each query."""
    right = np.clip(np.searchsorted(stamps, queries), 0, len(stamps) - 1)
    left = np.clip(right - 1, 0, len(stamps) - 1)
    return np.where(np.abs(stamps[left] - queries) <= np.abs(stamps[right] - queries), left, right)


def _values_nearest(stamps: list[float], values: list, queries: np.ndarray) -> np.ndarray:
    order = np.argsort(stamps, kind='stable')
    return np.asarray(values)[order][nearest(np.asarray(stamps)[order], queries)]
