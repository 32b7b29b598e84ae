"""Interventions as demonstrations (HIL-SERL): the stretches of an episode the operator drove become episodes
of the learner's demo buffer (RUN/demo_replay), sampled beside the robot's own data and cloned by the BC term.

A stretch keeps its frames and the frame after its last action, so every window in it is a real transition;
it is terminal only where the episode itself ended there at success. Stretches too short for one n-step
window are not kept (counted in the status as intervention steps all the same).
"""
from __future__ import annotations

import numpy as np

PER_STEP = ('action', 'reward', 'success', 'intervention')


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
            elif key.startswith('image_') or key == 'state':
                segment[key] = value[start:end + 1]
            else:
                segment[key] = value
        segment['terminated'] = np.array(end == len(flags) and bool(episode.get('terminated', False)))
        segments.append(segment)
    return segments
