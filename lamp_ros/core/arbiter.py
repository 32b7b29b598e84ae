"""Who commands the arm: the policy or the operator's teleop device.

In 'auto' mode the operator takes over as soon as the device sends an action and keeps control while it
keeps sending; control returns to the policy `takeover_hold_s` after the operator's last action (the arm
holds still in between: the safety watchdog sees no fresh action). 'policy' ignores the device, 'teleop'
ignores the policy, 'hold' ignores both (the arm stands still; e.g. while the learner is unreachable). Every action that is used is labelled with its source, so the learner can treat the
operator's actions as interventions (demonstrations).
"""
from __future__ import annotations

from dataclasses import dataclass

MODES = ('auto', 'policy', 'teleop', 'hold')
SOURCES = ('policy', 'teleop')


@dataclass(frozen=True)
class ArbiterConfig:
    takeover_hold_s: float = 0.5

    def __post_init__(self) -> None:
        if self.takeover_hold_s < 0:
            raise ValueError(f'takeover_hold_s must be >= 0, got {self.takeover_hold_s}')


class ActionArbiter:
    def __init__(self, config: ArbiterConfig, mode: str = 'auto') -> None:
        self.config = config
        self.mode = 'auto'
        self.set_mode(mode)
        self._teleop_t = float('-inf')

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f'control mode must be one of {MODES}, got {mode[:40]!r}')
        self.mode = mode

    def operator_engaged(self, t: float) -> bool:
        return self.mode == 'teleop' or (self.mode == 'auto' and t - self._teleop_t <= self.config.takeover_hold_s)

    def accept(self, source: str, t: float) -> bool:
        """Should an action from `source` arriving at time t command the arm?"""
        if source not in SOURCES:
            raise ValueError(f'unknown action source {source!r}')
        if self.mode == 'hold':
            return False
        if source == 'teleop':
            if self.mode == 'policy':
                return False
            self._teleop_t = t
            return True
        return self.mode == 'policy' or (self.mode == 'auto' and not self.operator_engaged(t))
