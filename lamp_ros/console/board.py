"""What the console knows about the graph, fed by the ROS thread and read by the UI thread (hence the lock).

Rates are counted over the last RATE_WINDOW_S. The graph counts as running while the safety node's status
(published every second by every graph) is fresh.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lamp_ros.core.json_text import json_object

RATE_WINDOW_S = 2.0
GRAPH_TIMEOUT_S = 3.0
STATUS_SOURCES = ('policy', 'safety', 'episode', 'learner', 'teleop')
RATE_NAMES = ('camera', 'policy', 'command', 'teleop', 'applied')
LOG_LINES = 200


class RateMeter:
    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, t: float) -> None:
        self._times.append(t)
        self._trim(t)

    def rate(self, now: float) -> float:
        self._trim(now)
        return len(self._times) / self.window_s

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()


@dataclass(frozen=True)
class LogLine:
    clock: str            # HH:MM:SS
    text: str
    level: str            # 'info' | 'error'


@dataclass(frozen=True)
class Snapshot:
    now: float
    statuses: dict[str, dict[str, Any]]          # source -> last JSON status
    status_age: dict[str, float]                 # source -> seconds since it arrived
    rates: dict[str, float]                      # RATE_NAMES -> Hz
    instruction: str
    estop_topic: bool | None                     # last value seen on `estop`
    mode_topic: str                              # last value seen on control/mode
    reward: tuple[float, int] | None             # (reward, frame index)
    command_speed: float | None                  # |linear| of the last robot/ee_twist_cmd, m/s
    last_intervention: bool
    log: tuple[LogLine, ...]

    @property
    def graph_running(self) -> bool:
        return self.status_age.get('safety', float('inf')) <= GRAPH_TIMEOUT_S

    @property
    def estop(self) -> bool | None:
        """The safety layer's own word while it runs; else what was last published on `estop`."""
        if self.graph_running and 'estop' in self.statuses.get('safety', {}):
            return bool(self.statuses['safety']['estop'])
        return self.estop_topic


@dataclass
class StatusBoard:
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    _status_t: dict[str, float] = field(default_factory=dict)
    _rates: dict[str, RateMeter] = field(default_factory=lambda: {name: RateMeter() for name in RATE_NAMES})
    _instruction: str = ''
    _estop_topic: bool | None = None
    _mode_topic: str = ''
    _reward: tuple[float, int] | None = None
    _command_speed: float | None = None
    _last_intervention: bool = False
    _log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    seen_instructions: list[str] = field(default_factory=list)

    def tick(self, name: str, t: float) -> None:
        with self._lock:
            self._rates[name].tick(t)

    def on_status(self, source: str, text: str, t: float) -> None:
        if source not in STATUS_SOURCES:
            raise ValueError(f'unknown status source {source!r}')
        try:
            status = json_object(text)
        except ValueError as e:
            self.log(f'{source}/status ignored: {e}', 'error')
            return
        with self._lock:
            before = self._statuses.get(source, {})
            self._statuses[source], self._status_t[source] = status, t
        if source == 'episode':
            self._log_episode_change(before, status)
        if source == 'episode' and status.get('instruction'):
            self.on_instruction_seen(status['instruction'])

    def _log_episode_change(self, before: dict[str, Any], now: dict[str, Any]) -> None:
        if (before.get('episode'), before.get('state'), before.get('label')) == \
                (now.get('episode'), now.get('state'), now.get('label')):
            return
        if now.get('state') == 'running' and (before.get('state') != 'running' or before.get('episode') != now.get('episode')):
            self.log(f"episode {now.get('episode')} started: '{now.get('instruction', '')}'")
        elif now.get('state') == 'stopped' and before.get('state') == 'running':
            self.log(f"episode {now.get('episode')} stopped ({now.get('stop_reason', '')}) after {now.get('step')} "
                     f"steps, success={now.get('success')}")
        elif now.get('label') and now.get('label') != before.get('label'):
            self.log(f"episode {now.get('episode')} labelled {now.get('label')}")

    def on_instruction(self, text: str) -> None:
        with self._lock:
            self._instruction = text
        self.on_instruction_seen(text)

    def on_instruction_seen(self, text: str) -> None:
        text = text.strip()
        with self._lock:
            if text and text not in self.seen_instructions:
                self.seen_instructions.append(text)

    def on_estop(self, engaged: bool) -> None:
        with self._lock:
            self._estop_topic = engaged

    def on_mode(self, mode: str) -> None:
        with self._lock:
            self._mode_topic = mode

    def on_reward(self, reward: float, frame: int) -> None:
        with self._lock:
            self._reward = (reward, frame)

    def on_command(self, speed: float, t: float) -> None:
        with self._lock:
            self._rates['command'].tick(t)
            self._command_speed = speed

    def on_applied(self, intervention: bool, t: float) -> None:
        with self._lock:
            self._rates['applied'].tick(t)
            self._last_intervention = intervention

    def log(self, text: str, level: str = 'info') -> None:
        with self._lock:
            self._log.append(LogLine(time.strftime('%H:%M:%S'), text, level))

    def known_instructions(self) -> list[str]:
        with self._lock:
            return list(self.seen_instructions)

    def status(self, source: str) -> dict[str, Any]:
        """The last status of one source (a copy), without building a whole snapshot."""
        with self._lock:
            return dict(self._statuses.get(source, {}))

    def snapshot(self, now: float) -> Snapshot:
        with self._lock:
            return Snapshot(now=now, statuses={k: dict(v) for k, v in self._statuses.items()},
                            status_age={k: now - t for k, t in self._status_t.items()},
                            rates={k: m.rate(now) for k, m in self._rates.items()},
                            instruction=self._instruction, estop_topic=self._estop_topic, mode_topic=self._mode_topic,
                            reward=self._reward, command_speed=self._command_speed,
                            last_intervention=self._last_intervention, log=tuple(self._log))
