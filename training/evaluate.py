"""Evaluation: the deterministic policy (mean action) on fixed episode seeds; success = the task's success at
any step of the episode (LAMP's sparse signal), return = sum of the task's shaped reward."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import gymnasium
import numpy as np

import sim
from training.agent import DrQAgent
from training.config import EnvSettings


def make_env(task: str, settings: EnvSettings, terminate_on_success: bool = False) -> gymnasium.Env:
    return sim.make(task, image_size=settings.image_size, randomize=settings.randomize,
                    render_scale=settings.render_scale, terminate_on_success=terminate_on_success,
                    max_episode_steps=settings.episode_steps)


@dataclass(frozen=True)
class EvalResult:
    success_rate: float
    mean_return: float
    returns: tuple[float, ...]
    successes: tuple[bool, ...]
    instructions: tuple[str, ...]
    frames: tuple[np.ndarray, ...]          # the first episode, when recorded

    def summary(self) -> dict[str, float]:
        return {'success_rate': self.success_rate, 'mean_return': self.mean_return, 'episodes': len(self.returns)}


def evaluate(env: gymnasium.Env, agent: DrQAgent, embed: Callable[[str], np.ndarray], seeds: Sequence[int],
             instruction: str | None = None, record_first: bool = False,
             stop_at_success: bool = False) -> EvalResult:
    """Episodes with the given seeds; `instruction` overrides the env's (finetuning's chosen instruction).
    `stop_at_success` ends an episode at its first success (imitation's evaluation) instead of the time limit."""
    returns, successes, instructions, frames = [], [], [], []
    for k, seed in enumerate(seeds):
        obs, info = env.reset(seed=int(seed))
        text = instruction or info['instruction']
        embedding = embed(text)
        total, success, done = 0.0, False, False
        if record_first and k == 0:
            frames.append(env.unwrapped.view_frame(obs))
        while not done:
            action, _ = agent.act(obs, embedding, explore=False)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            success = success or bool(info['success'])
            done = terminated or truncated or (stop_at_success and success)
            if record_first and k == 0:
                frames.append(env.unwrapped.view_frame(obs))
        returns.append(total)
        successes.append(success)
        instructions.append(text)
    return EvalResult(float(np.mean(successes)), float(np.mean(returns)), tuple(returns), tuple(successes),
                      tuple(instructions), tuple(frames))
