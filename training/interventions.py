"""Interventions as demonstrations (HIL-SERL): the stretches of an episode the operator drove become episodes
of the demo buffer (RUN/demo_replay), sampled beside the robot's own data and cloned by the BC term: on the arm
(the learner: a person, or the graph's scripted operator) and in lamp-train's simulated finetuning
(`StallTakeover`: the scripted expert, finetune.help_episodes).

A stretch keeps its frames and the frame after its last action, so every window in it is a real transition;
it is terminal only where the episode itself ended there at success. Stretches too short for one n-step
window are not kept (counted in the status as intervention steps all the same).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PER_STEP = ('action', 'reward', 'success', 'intervention')
PER_FRAME = ('state', 'privileged')          # and every image_<camera>


@dataclass
class StallTakeover:
    """One episode's operator in simulation, by the rule of the graph's scripted operator
    (lamp_ros.teleop.scripted_operator.StallRule): once the episode has run `stall_steps` steps without success,
    it drives (the caller plays the scripted expert) until the episode ends."""
    stall_steps: int
    steps: int = 0
    driving: bool = False

    def drives(self, episode_success: bool) -> bool:
        """Whether the operator drives the next step, given whether the episode has succeeded so far."""
        self.driving = self.driving or (self.steps >= self.stall_steps and not episode_success)
        self.steps += 1
        return self.driving


def intervention_segments(episode: dict[str, np.ndarray], n_step: int) -> list[dict[str, np.ndarray]]:
    """The operator-driven stretches of a replay-format episode, each an episode of its own."""
    flags = np.asarray(episode.get('intervention', np.zeros(len(episode['action']), bool)), bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    segments = []
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start <= n_step:
            continue
        segment = {}
        for key, value in episode.items():
            if key in PER_STEP:
                segment[key] = value[start:end]
            elif key.startswith('image_') or key in PER_FRAME:
                segment[key] = value[start:end + 1]
            else:
                segment[key] = value
        segment['terminated'] = np.array(end == len(flags) and bool(episode.get('terminated', False)))
        segments.append(segment)
    return segments
