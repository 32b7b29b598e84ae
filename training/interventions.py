"""Interventions as demonstrations (HIL-SERL): the stretches of an episode the operator drove become episodes
of the demo buffer (RUN/demo_replay), sampled beside the robot's own data and cloned by the BC term: on the arm
(the learner: a person, or the graph's scripted operator) and in lamp-train's simulated finetuning
(lamp_ros.teleop.stall's `StallTakeover`: the scripted expert, finetune.help_episodes).

A stretch keeps its frames and the frame after its last action, so every window in it is a real transition;
it is terminal only where the episode itself ended there at success. Stretches too short for one n-step
window are not kept (counted in the status as intervention steps all the same).
"""
from __future__ import annotations

import numpy as np

PER_STEP = ('action', 'reward', 'success', 'intervention')
PER_FRAME = ('state', 'privileged')          # and every image_<camera>


def intervention_segments(episode: dict[str, np.ndarray], n_step: int) -> list[dict[str, np.ndarray]]:
    """The operator-driven stretches of a replay-format episode, each an episode of its own."""
    flags = np.asarray(episode.get('intervention', np.zeros(len(episode['action']), bool)), bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    ended = bool(episode.get('terminated', False))
    return [stretch(episode, start, end, end == len(flags) and ended)
            for start, end in zip(edges[::2], edges[1::2]) if end - start > n_step]


def before_takeover(episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The policy's part of an episode an operator took over (its steps before the first intervention), ending
    there as a failure: terminal, so its last window's value is its reward alone (finetune.takeover_is_failure:
    the takeover itself is the signal that the policy was failing, as RLIF, Luo et al. 2023, uses it)."""
    flags = np.asarray(episode['intervention'], bool)
    first = int(np.argmax(flags)) if flags.any() else len(flags)
    return stretch(episode, 0, first, bool(episode.get('terminated', False)) if first == len(flags) else True)


def stretch(episode: dict[str, np.ndarray], start: int, end: int, terminated: bool) -> dict[str, np.ndarray]:
    """Steps start..end-1 of a replay-format episode as an episode of its own (frames start..end)."""
    part = {}
    for key, value in episode.items():
        if key in PER_STEP:
            part[key] = value[start:end]
        elif key.startswith('image_') or key in PER_FRAME:
            part[key] = value[start:end + 1]
        else:
            part[key] = value
    part['terminated'] = np.array(terminated)
    return part
