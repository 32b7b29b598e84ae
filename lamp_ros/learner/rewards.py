"""Which reward a learner run trains on, and whether it is arriving.

A run's replay must hold rewards of one source only (a task reward and R3M's are on different scales), so
the source is recorded in RUN/learner.json and a resume (or a robot's hello) naming another is refused.
A robot whose reward source is not working (no weights, node down) still sends its steps, with NaN rewards:
trained on as 0 they would teach the agent that nothing pays. So training pauses while the newest steps
come without rewards, says why in the status, and resumes with the first chunk that has rewards again;
an episode mostly without rewards is kept out of the replay (RUN/unrewarded/, NaN kept) for a later relabel.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

log = logging.getLogger(__name__)


class RewardFlow:
    """Whether the newest chunk with steps had any reward (updated by the link thread, read by training)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.missing_steps = 0            # steps without reward since the last chunk that had one
        self.paused = False

    def note(self, rewards: np.ndarray) -> None:
        if len(rewards) == 0:
            return
        present = bool(np.isfinite(rewards).any())
        with self._lock:
            self.missing_steps = 0 if present else self.missing_steps + len(rewards)
            was, self.paused = self.paused, not present
        if self.paused and not was:
            log.warning('training paused: steps arrive without rewards (is the reward source running? '
                        'reward/status on the robot); it resumes when rewards arrive')
        elif was and not self.paused:
            log.info('rewards arrive again: training resumes')

    def status(self) -> str:
        with self._lock:
            if self.paused:
                return f'paused: the last {self.missing_steps} steps came without rewards'
            return ''


def checked_source(recorded: str, wanted: str, run: str) -> str:
    """The run's reward source: `wanted` (an option or a robot's hello) must match what the run recorded."""
    if wanted and recorded and wanted != recorded:
        raise RewardSourceError(f'{run} trains on the {recorded!r} reward, not {wanted!r}: rewards of two sources '
                                'do not mix in one replay (choose another run directory)')
    return recorded or wanted


class RewardSourceError(ValueError):
    """Another reward source than the run's."""
