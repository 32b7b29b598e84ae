"""The pretraining reward's language term: r_VLM of a transition = R(e(o_0), e(o_{t+1}), l) for its episode's
instruction l (LAMP's R3M reward), computed once per stored episode through models.relabel (each frame
embedded once, the instruction once, only the reward head per frame), and optionally standardized per
instruction with running statistics (LAMP's standardize_rewards).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from models.relabel import FrameEmbeddingCache, relabel
from models.reward_model import RewardModel, frames_at_size


class VlmRewardLabeler:
    def __init__(self, model: RewardModel, image_size: int = 0, memory_episodes: int = 4) -> None:
        """image_size > 0: frames are resized to it first (the size the reward model was trained at)."""
        self.model = model
        self.image_size = image_size
        self.cache = FrameEmbeddingCache(model.name, memory_episodes=memory_episodes)

    def label(self, episode_id: str, frames: np.ndarray, instruction: str) -> np.ndarray:
        """Front frames uint8 [T+1, H, W, 3] of one episode -> float32 [T]: reward of reaching o_1 .. o_T."""
        frames = frames_at_size(frames, self.image_size)
        scores = relabel(self.model, {episode_id: frames}, [instruction], self.cache, progress=False)[episode_id]
        return scores[1:, 0].astype(np.float32)


class RewardStandardizer:
    """Per-instruction running mean and standard deviation (Welford), updated with each episode's rewards."""

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps
        self.stats: dict[str, list[float]] = {}      # instruction -> [count, mean, M2]

    def update_and_standardize(self, instruction: str, rewards: np.ndarray) -> np.ndarray:
        count, mean, m2 = self.stats.get(instruction, [0.0, 0.0, 0.0])
        for value in rewards.astype(np.float64):
            count += 1.0
            delta = value - mean
            mean += delta / count
            m2 += delta * (value - mean)
        self.stats[instruction] = [count, mean, m2]
        std = np.sqrt(m2 / count) if count > 1 else 1.0
        return ((rewards - mean) / max(std, self.eps)).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.stats.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.stats = {str(k): [float(x) for x in v] for k, v in state.items()}
