"""A simulated end effector around the ROS-free safety filter, for property tests and bench/safety_walls.py.

It plays what the safety node and an arm driver do, event by event, in simulated time:

  actions      bursts of one action (or alternating signs) at any rate, offered to the filter on arrival
  safety node  polls the filter on every action, on a 50 Hz watchdog and at the slot of a waiting action;
               now and then it stalls (a loaded CPU) and handles what arrived meanwhile late, all at once
  arm          executes each published twist from its arrival (up to DELIVERY_LATENCY_S after publication)
               until the next twist arrives or a random hold (up to max_hold_s after publication) ends,
               then stands still (twists arrive in order and none is lost: robot/ee_twist_cmd is reliable);
               it measures its position at the control rate, delivered a few ms later (now and then much
               later, out of order) with the measurement's stamp, with a camera image

and records what the filter published and how far the end effector ever was, and rested, outside the box.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from lamp_ros.core.safety import SafetyConfig, SafetyFilter
from lamp_ros.core.workspace import DELIVERY_LATENCY_S

WATCHDOG_PERIOD_S = 0.02
POSE_DELAY_MAX_S = 0.01
LATE_POSE_SHARE, LATE_POSE_MAX_S = 0.1, 0.4     # now and then a pose arrives very late (and out of order)
MAX_ACTIONS_PER_BURST = 1000
NODE_EVENTS = ('action', 'pose', 'poll', 'slot')    # what the safety node handles (and a stall delays)


@dataclass(frozen=True)
class Burst:
    action: tuple[float, float, float, float]
    rate_hz: float
    duration_s: float
    alternate: bool = False          # flip the sign of the motion with every message (a 1 kHz +-1 flood)


@dataclass
class Outcome:
    published: list[tuple[float, np.ndarray, bool]] = field(default_factory=list)   # (t, velocity, stopped)
    worst_outside_m: float = 0.0     # the farthest the EE ever was outside the box
    rest_outside_m: float = 0.0      # the farthest outside it ever stood still
    actions: int = 0
    dropped: int = 0
    final_position: np.ndarray | None = None


def outside_m(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    return float(max(np.max(lo - p), np.max(p - hi), 0.0))


class EndEffector:
    """Moves at the velocity it was last given until that twist's hold ends; tracks excursions outside the box
    (the path is piecewise linear, so the extremes are at the times it is advanced to)."""

    def __init__(self, position: np.ndarray, lo: np.ndarray, hi: np.ndarray, outcome: Outcome) -> None:
        self.p, self.t = np.array(position, dtype=float), 0.0
        self.v, self.until = np.zeros(3), 0.0
        self.lo, self.hi, self.out = lo, hi, outcome

    def advance(self, t: float) -> np.ndarray:
        if t > self.t:
            moving = max(min(t, self.until) - self.t, 0.0)
            self.p = self.p + self.v * moving
            self.out.worst_outside_m = max(self.out.worst_outside_m, outside_m(self.p, self.lo, self.hi))
            if t >= self.until:
                self.v = np.zeros(3)
            self.t = t
        if not np.any(self.v):
            self.out.rest_outside_m = max(self.out.rest_outside_m, outside_m(self.p, self.lo, self.hi))
        return self.p

    def receive(self, t: float, velocity: np.ndarray, hold_until: float) -> None:
        self.advance(t)
        self.v, self.until = np.array(velocity, dtype=float), hold_until
        self.advance(t)


def action_times(bursts: list[Burst], start_t: float) -> list[tuple[float, np.ndarray]]:
    out, t = [], start_t
    for b in bursts:
        n = max(1, min(int(b.duration_s * b.rate_hz), MAX_ACTIONS_PER_BURST))
        for i in range(n):
            a = np.array(b.action, dtype=float)
            if b.alternate and i % 2:
                a[:3] = -a[:3]
            out.append((t, a))
            t += 1.0 / b.rate_hz
    return out


class World:
    def __init__(self, config: SafetyConfig, start: np.ndarray, seed: int, stalls_per_s: float = 0.0,
                 max_stall_s: float = 0.5) -> None:
        """Stalls of the safety node come at random, `stalls_per_s` on average, each up to `max_stall_s` long."""
        self.cfg = config
        self.rng = np.random.default_rng(seed)
        self.stalls_per_s, self.max_stall_s = stalls_per_s, max_stall_s
        self._stalled_until = 0.0
        self.out = Outcome()
        self.filter = SafetyFilter(config, start_t=0.0)
        self.arm = EndEffector(start, np.asarray(config.workspace_min), np.asarray(config.workspace_max), self.out)
        self._events: list = []
        self._seq = itertools.count()
        self._arrival = 0.0              # twists arrive in the order they were published (one reliable writer)
        self._slot_waiting = False

    def _at(self, t: float, kind: str, payload=None) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, payload))

    def run(self, bursts: list[Burst], settle_s: float = 1.0) -> Outcome:
        actions = action_times(bursts, start_t=self.cfg.startup_hold_s + 0.05)
        self.out.actions = len(actions)
        for t, a in actions:
            self._at(t, 'action', a)
        end = (actions[-1][0] if actions else 0.0) + self.cfg.max_hold_s + settle_s
        phase = self.rng.uniform(0, self.cfg.period_s)
        for k in range(int(end / self.cfg.period_s) + 1):
            self._at(phase + k * self.cfg.period_s, 'measure')
        for k in range(int(end / WATCHDOG_PERIOD_S) + 1):
            self._at(k * WATCHDOG_PERIOD_S, 'poll')
        while self._events:
            t, _, kind, payload = heapq.heappop(self._events)
            if kind in NODE_EVENTS and t < self._stalled_until:
                self._at(self._stalled_until, kind, payload)        # the node handles it when it wakes up
                continue
            getattr(self, f'_on_{kind}')(t, payload)
        self.out.final_position = self.arm.advance(end + self.cfg.max_hold_s)
        self.out.dropped = self.filter.dropped
        return self.out

    def _on_action(self, t: float, action: np.ndarray) -> None:
        self.filter.on_action(t, action)
        self._poll(t)

    def _on_measure(self, t: float, _) -> None:
        late = self.rng.random() < LATE_POSE_SHARE
        delay = self.rng.uniform(0, LATE_POSE_MAX_S if late else POSE_DELAY_MAX_S)
        self._at(t + delay, 'pose', (t, self.arm.advance(t).copy()))

    def _on_pose(self, t: float, measured: tuple[float, np.ndarray]) -> None:
        self.filter.on_image(t)
        self.filter.on_ee_pose(t, measured[1], measured_t=measured[0])

    def _on_poll(self, t: float, _) -> None:
        if self.rng.random() < self.stalls_per_s * WATCHDOG_PERIOD_S:
            self._stalled_until = t + self.rng.uniform(0, self.max_stall_s)
            self._at(t, 'poll')                                      # handled when the stall ends
            return
        self._poll(t)

    def _on_slot(self, t: float, _) -> None:
        self._slot_waiting = False
        self._poll(t)

    def _on_deliver(self, t: float, twist: tuple[np.ndarray, float]) -> None:
        self.arm.receive(t, *twist)

    def _poll(self, t: float) -> None:
        """What the safety node does: publish what is due, else wake up at the waiting action's slot."""
        cmd = self.filter.poll(t)
        if cmd is not None:
            self.out.published.append((t, cmd.velocity.copy(), cmd.stopped))
            self._arrival = max(t + self.rng.uniform(0, DELIVERY_LATENCY_S), self._arrival)
            hold_until = t + self.rng.uniform(0, self.cfg.max_hold_s)
            self._at(self._arrival, 'deliver', (cmd.velocity.copy(), hold_until))
        if self.filter.pending and not self._slot_waiting:
            self._slot_waiting = True
            self._at(max(self.filter.next_slot, t), 'slot')
