"""Episode bookkeeping: when an episode starts and stops, its step count, and whether it succeeded.

Success can come from the simulator's privileged test ('sim'), from the operator's label ('label'), or from
the reward crossing a threshold ('reward'); the config says which count. An episode stops at max_steps, on
success (if stop_on_success), on an operator label, or on request. ROS-free: lamp_ros.nodes.episode wires it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lamp_ros.core.json_text import json_object

SUCCESS_SOURCES = ('sim', 'label', 'reward')
LABELS = ('success', 'failure')
STATES = ('idle', 'running', 'stopped')
COUNTS = ('episode', 'step', 'max_steps', 'interventions')     # whole numbers in a status
TEXTS = ('label', 'instruction', 'success_source', 'stop_reason')


def parse_status(text: str) -> dict[str, Any]:
    """An episode/status message (EpisodeTracker.status() as JSON) -> its dict; ValueError saying what is wrong
    otherwise, so that every subscriber drops a bad one with one log line and keeps what it knew."""
    status = json_object(text)
    problems = _status_problems(status)
    if problems:
        raise ValueError('; '.join(problems))
    return status


def _status_problems(status: dict[str, Any]) -> list[str]:
    problems = [] if status.get('state') in STATES else \
        [f"state {status.get('state')!r} is not one of {', '.join(STATES)}"]
    if 'episode' not in status:
        problems.append('no episode number')
    return problems + _type_problems(status)


def _type_problems(status: dict[str, Any]) -> list[str]:
    """Counts that are not whole numbers, texts that are not text, a success that is not a bool."""
    problems = []
    counts = [k for k in COUNTS if k in status and not _is_count(status[k])]
    if counts:
        problems.append(', '.join(f'{k} {status[k]!r}' for k in counts) + ' must be whole numbers >= 0')
    wrong = [k for k in TEXTS if not isinstance(status.get(k, ''), str)]
    wrong += ['success'] if not isinstance(status.get('success', False), bool) else []
    if wrong:
        problems.append(', '.join(f'{k} {str(status[k])[:40]!r}' for k in wrong) + ' of the wrong type')
    return problems


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class EpisodeConfig:
    max_steps: int = 150
    success_sources: tuple[str, ...] = ('sim', 'label')
    reward_threshold: float = 0.0            # used when 'reward' is a success source
    stop_on_success: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f'max_steps must be >= 1, got {self.max_steps}')
        unknown = set(self.success_sources) - set(SUCCESS_SOURCES)
        if unknown:
            raise ValueError(f'unknown success sources {sorted(unknown)}; known: {SUCCESS_SOURCES}')


@dataclass
class EpisodeTracker:
    config: EpisodeConfig
    episode: int = 0
    state: str = 'idle'                       # idle | running | stopped
    step: int = 0
    success: bool = False
    success_source: str = ''
    label: str = ''
    stop_reason: str = ''
    instruction: str = ''
    interventions: int = 0
    _events: list[str] = field(default_factory=list)

    def start(self, instruction: str) -> None:
        if self.state == 'running':
            self.stop('restarted')
        self.episode += 1
        self.state, self.step, self.success, self.success_source = 'running', 0, False, ''
        self.label, self.stop_reason, self.instruction, self.interventions = '', '', instruction, 0
        self._events.append('start')

    def stop(self, reason: str) -> None:
        if self.state != 'running':
            return
        self.state, self.stop_reason = 'stopped', reason
        self._events.append('stop')

    def on_step(self, intervention: bool = False) -> None:
        """One control step was commanded during the episode."""
        if self.state != 'running':
            return
        self.step += 1
        self.interventions += int(intervention)
        if self.step >= self.config.max_steps:
            self.stop('max_steps')

    def on_sim_success(self, success: bool) -> None:
        """Counted from the episode's first step on: before it, a True can only be the previous scene's, sent
        just before the reset (measured through the finetune graph: episodes 'succeeding' after 0 steps)."""
        if success and 'sim' in self.config.success_sources and self.step > 0:
            self._succeed('sim')

    def on_reward(self, reward: float) -> None:
        if 'reward' in self.config.success_sources and reward >= self.config.reward_threshold:
            self._succeed('reward')

    def on_label(self, label: str) -> None:
        """The operator's verdict on the running or just-stopped episode; it also stops a running one."""
        if label not in LABELS:
            raise ValueError(f'label must be one of {LABELS}, got {label!r}')
        if self.state == 'idle':
            return
        self.label = label
        if 'label' in self.config.success_sources:
            self.success = label == 'success'
            self.success_source = 'label'
        self.stop(f'labelled {label}')

    def _succeed(self, source: str) -> None:
        if self.state != 'running' or self.success:
            return
        self.success, self.success_source = True, source
        if self.config.stop_on_success:
            self.stop('success')

    def take_events(self) -> list[str]:
        """Events ('start', 'stop') since the last call, in order."""
        events, self._events = self._events, []
        return events

    def status(self) -> dict[str, Any]:
        return {'episode': self.episode, 'state': self.state, 'step': self.step,
                'max_steps': self.config.max_steps, 'success': self.success, 'success_source': self.success_source,
                'label': self.label, 'stop_reason': self.stop_reason, 'instruction': self.instruction,
                'interventions': self.interventions}
