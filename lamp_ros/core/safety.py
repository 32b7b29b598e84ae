"""The safety layer: the one place every arm command passes through before it reaches a driver.

It turns a 4-D action in [-1, 1] into a Cartesian velocity (m/s) and a gripper action, and
intervenes for these reasons, each reported with a code and a human-readable detail:

  stop (zero velocity, gripper held):  start-up hold, e-stop (latched until released), a rejected action
      (NaN/Inf, wrong length), and the watchdog: no or stale camera image, EE pose or action;
  limit (motion continues, reduced):   action outside [-1, 1], per-step translation limit,
      speed limit, acceleration limit, workspace box (motion only back toward the box).

ROS-free so it is tested directly; lamp_ros.nodes.safety wires it to topics.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lamp_ros.contract import ACTION_DIM, ACTION_SCALE_M, DEFAULT_CONTROL_RATE_HZ

STOP_CODES = ('starting', 'estop', 'action_rejected', 'no_image', 'stale_image', 'no_ee_pose', 'stale_ee_pose',
              'no_action', 'stale_action')
LIMIT_CODES = ('action_clipped', 'step_limit', 'speed_limit', 'accel_limit', 'workspace')


@dataclass(frozen=True)
class SafetyConfig:
    control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ
    action_scale_m: float = ACTION_SCALE_M           # |a| = 1 -> this many metres per control step
    workspace_min: tuple[float, float, float] = (-1.0, -1.0, 0.0)
    workspace_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    max_step_m: float = 0.03                          # translation per control step, along each axis
    max_speed_mps: float = 0.3
    max_accel_mps2: float = 3.0
    stale_timeout_periods: float = 1.5                # inputs older than this many control periods -> stop
    startup_hold_s: float = 1.0                       # no motion until discovery had time to deliver a latched e-stop
    startup_max_hold_s: float = 10.0                  # ... and, while an e-stop publisher is known whose state has
                                                      # not arrived yet, up to this long

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f'workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}')
        for name in ('control_rate_hz', 'action_scale_m', 'max_step_m', 'max_speed_mps', 'max_accel_mps2',
                     'stale_timeout_periods'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if self.startup_hold_s < 0:
            raise ValueError(f'startup_hold_s must be >= 0, got {self.startup_hold_s}')

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def stale_timeout_s(self) -> float:
        return self.stale_timeout_periods * self.period_s


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str

    @property
    def stops(self) -> bool:
        return self.code in STOP_CODES

    def __str__(self) -> str:
        return f'{self.code}: {self.detail}'


@dataclass(frozen=True)
class Command:
    velocity: np.ndarray                 # (3,) m/s, base frame
    gripper: float | None                # gripper action in [-1, 1]; None = hold the current state
    reasons: tuple[Reason, ...] = ()

    @property
    def state(self) -> str:
        codes = {r.code for r in self.reasons}
        if 'estop' in codes:
            return 'estop'
        if any(r.stops for r in self.reasons):
            return 'stopped'
        return 'limited' if codes else 'ok'

    @property
    def stopped(self) -> bool:
        return self.state in ('estop', 'stopped')


@dataclass
class _Inputs:
    image_t: float | None = None
    ee_t: float | None = None
    ee_position: np.ndarray | None = None
    action_t: float | None = None
    action: np.ndarray | None = None
    action_problem: Reason | None = None
    estop: bool = False
    estop_heard: bool = False
    estop_publishers: int = 0
    last_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))


class SafetyFilter:
    """Keeps the latest inputs and answers 'what may the arm do now?' (`command(t)`)."""

    def __init__(self, config: SafetyConfig, start_t: float) -> None:
        self.config = config
        self._start_t = start_t
        self._in = _Inputs()
        self._lo = np.asarray(config.workspace_min, dtype=float)
        self._hi = np.asarray(config.workspace_max, dtype=float)

    # --- inputs ---------------------------------------------------------------------------------
    def on_image(self, t: float) -> None:
        self._in.image_t = t

    def on_ee_pose(self, t: float, position: np.ndarray) -> None:
        position = np.asarray(position, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            return                              # a broken pose is no fresh pose: the watchdog will stop
        self._in.ee_t, self._in.ee_position = t, position

    def on_estop(self, engaged: bool) -> None:
        self._in.estop, self._in.estop_heard = bool(engaged), True

    def waiting_for_estop_state(self, t: float) -> bool:
        """Whether the count of e-stop publishers still matters (start-up, no e-stop state heard yet)."""
        return not self._in.estop_heard and t - self._start_t < self.config.startup_max_hold_s

    def on_estop_publishers(self, count: int) -> None:
        """How many e-stop publishers discovery knows: one whose latched state has not arrived holds the start."""
        self._in.estop_publishers = count

    def on_action(self, t: float, action: np.ndarray) -> None:
        a = np.asarray(action, dtype=float).reshape(-1)
        self._in.action_t = t
        if a.shape != (ACTION_DIM,):
            self._in.action, self._in.action_problem = None, Reason(
                'action_rejected', f'expected {ACTION_DIM} values, got {a.size}')
        elif not np.all(np.isfinite(a)):
            self._in.action, self._in.action_problem = None, Reason(
                'action_rejected', f'non-finite values {a.tolist()}')
        else:
            self._in.action, self._in.action_problem = a, None

    @property
    def estop_engaged(self) -> bool:
        return self._in.estop

    # --- decision -------------------------------------------------------------------------------
    def command(self, t: float) -> Command:
        """The command for the latest action (call when an action arrives)."""
        stop = self.watchdog(t)
        if stop is not None:
            return stop
        velocity, gripper, limits = self._limited(self._in.action)
        self._in.last_velocity = velocity
        return Command(velocity, gripper, tuple(limits))

    def watchdog(self, t: float) -> Command | None:
        """A zero-velocity command if anything requires a stop now, else None (call periodically)."""
        stops = self._stop_reasons(t)
        if not stops:
            return None
        self._in.last_velocity = np.zeros(3)
        return Command(np.zeros(3), None, tuple(stops))

    def _stop_reasons(self, t: float) -> list[Reason]:
        cfg, s = self.config, self._in
        reasons = []
        if t - self._start_t < cfg.startup_hold_s:
            reasons.append(Reason('starting', f'holding still for the first {cfg.startup_hold_s} s '
                                              '(a latched e-stop may still be on its way)'))
        elif s.estop_publishers and not s.estop_heard and t - self._start_t < cfg.startup_max_hold_s:
            reasons.append(Reason('starting', 'an e-stop publisher is known but its latched state has not arrived'))
        if s.estop:
            reasons.append(Reason('estop', 'e-stop engaged; publish False on estop to release'))
        for code, stamp, what in (('image', s.image_t, 'camera image'), ('ee_pose', s.ee_t, 'EE pose'),
                                  ('action', s.action_t, 'policy action')):
            if stamp is None:
                reasons.append(Reason(f'no_{code}', f'no {what} received yet'))
            elif t - stamp > cfg.stale_timeout_s:
                reasons.append(Reason(f'stale_{code}', f'{what} is {t - stamp:.3f} s old '
                                                        f'(limit {cfg.stale_timeout_s:.3f} s)'))
        if s.action_problem is not None:
            reasons.append(s.action_problem)
        return reasons

    def _limited(self, action: np.ndarray) -> tuple[np.ndarray, float, list[Reason]]:
        cfg = self.config
        limits = []
        a = np.clip(action, -1.0, 1.0)
        if np.any(a != action):
            limits.append(Reason('action_clipped', f'action {np.round(action, 3).tolist()} outside [-1, 1]'))
        step = a[:3] * cfg.action_scale_m
        largest = float(np.max(np.abs(step)))
        if largest > cfg.max_step_m:
            step = np.clip(step, -cfg.max_step_m, cfg.max_step_m)
            limits.append(Reason('step_limit', f'{largest:.4f} m along one axis in a step > {cfg.max_step_m} m'))
        v = step * cfg.control_rate_hz
        speed = float(np.linalg.norm(v))
        if speed > cfg.max_speed_mps:
            v *= cfg.max_speed_mps / speed
            limits.append(Reason('speed_limit', f'{speed:.3f} m/s > {cfg.max_speed_mps} m/s'))
        dv = v - self._in.last_velocity
        dv_max = cfg.max_accel_mps2 * cfg.period_s
        dv_norm = float(np.linalg.norm(dv))
        if dv_norm > dv_max:
            v = self._in.last_velocity + dv * (dv_max / dv_norm)
            limits.append(Reason('accel_limit', f'velocity change {dv_norm:.3f} m/s > {dv_max:.3f} m/s per step'))
        v, box = self._inside_workspace(v)
        if box:
            limits.append(Reason('workspace', box))
        return v, float(a[3]), limits

    def _inside_workspace(self, v: np.ndarray) -> tuple[np.ndarray, str]:
        """Clip v so that one period of motion ends inside the box; outside it, allow only motion toward it."""
        p, dt = self._in.ee_position, self.config.period_s
        lo_v = np.minimum(0.0, (self._lo - p) / dt)
        hi_v = np.maximum(0.0, (self._hi - p) / dt)
        clipped = np.clip(v, lo_v, hi_v)
        if np.allclose(clipped, v, atol=1e-12):
            return v, ''
        axes = [f"{'xyz'[i]}={p[i]:.3f} m" for i in range(3) if clipped[i] != v[i]]
        return clipped, (f'motion limited at the box {self._lo.tolist()}..{self._hi.tolist()} ({", ".join(axes)})')


class InterventionLog:
    """Turns the stream of commands into events: an intervention is reported once when it starts and once
    when it clears, however many control steps it lasts."""

    def __init__(self) -> None:
        self._active: dict[str, Reason] = {}
        self.count = 0
        self.last: Reason | None = None

    def update(self, command: Command) -> tuple[list[Reason], list[str]]:
        """Returns (interventions that started now, codes that cleared now)."""
        now = {r.code: r for r in command.reasons}
        started = [r for code, r in now.items() if code not in self._active]
        cleared = [code for code in self._active if code not in now]
        self._active = now
        self.count += len(started)
        if started:
            self.last = started[-1]
        return started, cleared

    @property
    def active(self) -> list[Reason]:
        return list(self._active.values())
