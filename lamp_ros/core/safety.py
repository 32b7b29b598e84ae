"""The safety layer: the one place every arm command passes through before it reaches a driver.

It turns a 4-D action in [-1, 1] into a Cartesian velocity (m/s) and a gripper action, and
intervenes for these reasons, each reported with a code and a human-readable detail:

  stop (zero velocity, gripper held):  start-up hold, e-stop (latched until released), a rejected action
      (NaN/Inf, wrong length), and the watchdog: no or stale camera image, EE pose or action;
  limit (motion continues, reduced):   action outside [-1, 1], per-step translation limit,
      speed limit, acceleration limit, workspace box (braking before the wall; lamp_ros.core.workspace),
      outside the box (driven back inward).

Commands leave at the control rate, never faster, whatever arrives (`poll`): one per slot of a fixed grid
of control periods (lamp_ros.core.pacing, as the policy paces its actions), never closer than
MIN_GAP_PERIODS of a period. A slot opens a tenth of a period early, so arrival jitter neither adds latency
nor makes the output drift behind (as a gap of a whole period after each command would). Actions arriving
faster are down-sampled, the newest wins, and the dropped ones are counted. The one exception is a stop,
which is sent at once when the arm was last commanded to move. Acceleration limits hold per second of
time: a command may change the velocity by max_accel_mps2 times the time since the previous one (braking
for the box), and speed up by at most a period's worth.

ROS-free so it is tested directly; lamp_ros.nodes.safety wires it to topics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lamp_ros.contract import ACTION_DIM, ACTION_SCALE_M, DEFAULT_CONTROL_RATE_HZ, MAX_ACCEL_MPS2, MAX_SPEED_MPS
from lamp_ros.core.pacing import ImagePacer
from lamp_ros.core.staleness import InputClock
from lamp_ros.core.workspace import MotionLog, WorkspaceGuard

STOP_CODES = ('starting', 'estop', 'action_rejected', 'no_image', 'stale_image', 'no_ee_pose', 'stale_ee_pose',
              'no_action', 'stale_action')
LIMIT_CODES = ('action_clipped', 'step_limit', 'speed_limit', 'accel_limit', 'workspace', 'outside_workspace')
POSE_LOOKBACK_S = 1.0        # how old a pose's stamp may say it is (older stamps count as this old)
WATCHED = {'image': 'camera image', 'ee_pose': 'EE pose', 'action': 'policy action'}   # the watchdog's inputs
MIN_GAP_PERIODS = 0.9        # commands on the grid, never closer than this many periods (a slot opens this early)


@dataclass(frozen=True)
class SafetyConfig:
    """Defaults are the safe table-top values (the sim scenes' table, docs/sim.md): a node started without
    config/safety.yaml is as safe as one started with it. Site overrides go in a params file."""
    control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ
    action_scale_m: float = ACTION_SCALE_M           # |a| = 1 -> this many metres per control step
    workspace_min: tuple[float, float, float] = (0.22, -0.26, 0.01)
    workspace_max: tuple[float, float, float] = (0.70, 0.26, 0.31)
    max_step_m: float = 0.03                          # translation per control step, along each axis
    max_speed_mps: float = MAX_SPEED_MPS
    max_accel_mps2: float = MAX_ACCEL_MPS2
    max_jerk_mps3: float = 60.0                       # the commanded acceleration grows by at most this per second
                                                      # (binds above ~20 Hz; workspace braking and stops are exempt)
    max_hold_s: float = 0.35                          # the arm may execute one twist this long (sim_arm: a twist
                                                      # runs on each 0.1 s tick within cmd_timeout_s 0.25 s)
    stale_timeout_periods: float = 1.5                # inputs older than this many control periods -> stop, until
                                                      # an input's own rhythm is measured (lamp_ros.core.staleness):
    stale_margin: float = 1.5                         # then its limit is this times the p99 of its intervals,
    stale_min_s: float = 0.04                         # at least this (two 50 Hz watchdog ticks),
    stale_max_periods: float = 1.5                    # at most this many periods: never looser than the fixed
                                                      # limit (a 10-min soak at load 4: 0.03% stale stops with it),
                                                      # so a dead 10 Hz input stops the arm as fast as before
    startup_hold_s: float = 1.0                       # no motion until discovery had time to deliver a latched e-stop
    startup_max_hold_s: float = 10.0                  # ... and, while an e-stop publisher is known whose state has
                                                      # not arrived yet, up to this long

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f'workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}')
        for name in ('control_rate_hz', 'action_scale_m', 'max_step_m', 'max_speed_mps', 'max_accel_mps2',
                     'max_jerk_mps3',
                     'max_hold_s', 'stale_timeout_periods', 'stale_min_s', 'stale_max_periods'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if self.stale_margin < 1.0:
            raise ValueError(f'stale_margin must be >= 1, got {self.stale_margin}')
        if self.startup_hold_s < 0:
            raise ValueError(f'startup_hold_s must be >= 0, got {self.startup_hold_s}')
        if self.max_hold_s < self.period_s:
            raise ValueError(f'max_hold_s {self.max_hold_s} is shorter than a control period ({self.period_s} s): '
                             'a driver that stops before the next command cannot follow the control rate')

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
    ee_measured_t: float | None = None        # when the position was measured (the pose's stamp, if any)
    ee_position: np.ndarray | None = None
    action: np.ndarray | None = None
    action_problem: Reason | None = None
    pending: bool = False                 # an action arrived that no command has used yet
    estop: bool = False
    estop_heard: bool = False
    estop_restored: bool = False          # engaged from the saved state at start (lamp_ros.core.estop_store)
    estop_publishers: int = 0


class SafetyFilter:
    """Keeps the latest inputs and answers 'what may the arm do now, if anything?' (`poll(t)`)."""

    def __init__(self, config: SafetyConfig, start_t: float, estop_engaged: bool = False) -> None:
        self.config = config
        self._start_t = start_t
        self._in = _Inputs(estop=estop_engaged, estop_restored=estop_engaged)
        self.dropped = 0                                        # actions replaced by a newer one before use
        self._last_t = -math.inf                                # when the last command was published
        self._last_v = np.zeros(3)
        self._last_accel = 0.0                                  # m/s^2 of the last command's velocity change
        self._started = False                                   # a motion command has gone out: the start is over
        self._grid = ImagePacer(config.control_rate_hz, min_fraction=MIN_GAP_PERIODS)
        axis_decel = config.max_accel_mps2 / math.sqrt(3.0)    # three axes braking at once stay within the limit
        self._guard = WorkspaceGuard(config.workspace_min, config.workspace_max, config.max_hold_s, axis_decel,
                                     config.max_speed_mps / math.sqrt(3.0), config.control_rate_hz)
        self._log = MotionLog(config.max_hold_s, keep_s=POSE_LOOKBACK_S + config.max_hold_s + config.period_s)
        longest = config.stale_max_periods * config.period_s
        self.clocks = {name: InputClock(config.stale_timeout_s, min(config.stale_min_s, longest), longest,
                                        config.stale_margin)
                       for name in WATCHED}

    # --- inputs ---------------------------------------------------------------------------------
    def on_image(self, t: float) -> None:
        self.clocks['image'].arrived(t)

    def on_ee_pose(self, t: float, position: np.ndarray, measured_t: float | None = None) -> None:
        """`measured_t`: when the position was measured (the pose's stamp), if known: the workspace prediction
        counts the motion commanded since then, so a pose delivered late is no less safe. It is kept within
        POSE_LOOKBACK_S before arrival (as far back as the motion log reaches); a driver clock that is behind
        only makes the prediction more cautious. A pose measured before the one in use is older news, not a
        fresh pose (it would widen the prediction at once); the watchdog judges a pose's age by its arrival."""
        position = np.asarray(position, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            return                              # a broken pose is no fresh pose: the watchdog will stop
        measured = t if measured_t is None else min(max(measured_t, t - POSE_LOOKBACK_S), t)
        if self._in.ee_measured_t is not None and measured < self._in.ee_measured_t:
            return                              # delivered out of order
        self.clocks['ee_pose'].arrived(t)
        self._in.ee_measured_t, self._in.ee_position = measured, position

    def on_estop(self, engaged: bool, t: float) -> str:
        """What the message did: 'engaged', 'released', 'ignored' or '' (no change). A release heard within
        startup_max_hold_s of start does not lift an e-stop restored from disk: it may be a latched message
        from a publisher that released an earlier e-stop, not this one."""
        self._in.estop_heard = True
        if engaged:
            changed, self._in.estop = not self._in.estop, True
            return 'engaged' if changed else ''
        if self._in.estop and self._in.estop_restored and t - self._start_t < self.config.startup_max_hold_s:
            return 'ignored'
        changed, self._in.estop = self._in.estop, False
        return 'released' if changed else ''

    def waiting_for_estop_state(self, t: float) -> bool:
        """Whether the count of e-stop publishers still matters (start-up, no motion yet, no e-stop state heard).
        Once the arm moves, a publisher discovered later stops it by what it says, not by being there: a panel
        that has never been pressed (the dashboard's, the console's) would otherwise freeze a moving arm for
        the rest of startup_max_hold_s."""
        return (not self._started and not self._in.estop_heard
                and t - self._start_t < self.config.startup_max_hold_s)

    def on_estop_publishers(self, count: int) -> None:
        """How many e-stop publishers discovery knows: one whose latched state has not arrived holds the start."""
        self._in.estop_publishers = count

    def on_action(self, t: float, action: np.ndarray) -> None:
        if self._in.pending:
            self.dropped += 1                   # faster than the control rate: the newest wins
        a = np.asarray(action, dtype=float).reshape(-1)
        self.clocks['action'].arrived(t)
        self._in.pending = True
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

    @property
    def next_slot(self) -> float:
        """The earliest time the next command may be published: its slot on the grid, and not closer than
        MIN_GAP_PERIODS to the last."""
        return max(self._grid.next_due, self._last_t + MIN_GAP_PERIODS * self.config.period_s)

    @property
    def pending(self) -> bool:
        return self._in.pending

    # --- decision -------------------------------------------------------------------------------
    def poll(self, t: float) -> Command | None:
        """The command to publish now, or None: call on every input and periodically (and at `next_slot` while
        an action is pending). A stop goes out at once if the arm was commanded to move, else at the control
        rate; motion only at the control rate, from the newest action."""
        stops = self._stop_reasons(t)
        if stops:
            if t >= self.next_slot or np.any(self._last_v != 0):
                return self._published(t, np.zeros(3), None, stops)
            return None
        if self._in.pending and t >= self.next_slot:
            return self._move(t)
        return None

    def command(self, t: float) -> Command:
        """The command for the latest inputs, published now whatever the rate (tests; poll() is the gate)."""
        stops = self._stop_reasons(t)
        return self._published(t, np.zeros(3), None, stops) if stops else self._move(t)

    def _move(self, t: float) -> Command:
        velocity, gripper, limits = self._limited(self._in.action, t)
        return self._published(t, velocity, gripper, limits)

    def _published(self, t: float, velocity: np.ndarray, gripper: float | None, reasons: list[Reason]) -> Command:
        self._in.pending = False                # answered, by motion or by a stop
        self._grid.acted(t)
        self._log.add(t, velocity)
        dt = min(max(t - self._last_t, 1e-9), self.config.period_s)
        self._last_accel = float(np.linalg.norm(velocity - self._last_v)) / dt
        self._last_t, self._last_v = t, velocity
        self._started = self._started or bool(np.any(velocity != 0))
        return Command(velocity, gripper, tuple(reasons))

    def _stop_reasons(self, t: float) -> list[Reason]:
        cfg, s = self.config, self._in
        reasons = []
        if t - self._start_t < cfg.startup_hold_s:
            reasons.append(Reason('starting', f'holding still for the first {cfg.startup_hold_s} s '
                                              '(a latched e-stop may still be on its way)'))
        elif s.estop_publishers and self.waiting_for_estop_state(t):
            reasons.append(Reason('starting', 'an e-stop publisher is known but its latched state has not arrived'))
        if s.estop:
            reasons.append(Reason('estop', 'e-stop engaged; publish False on estop to release'))
        for code, what in WATCHED.items():
            clock = self.clocks[code]
            age = clock.age(t)
            if age is None:
                reasons.append(Reason(f'no_{code}', f'no {what} received yet'))
            elif age > clock.limit_s:
                reasons.append(Reason(f'stale_{code}', f'{what} is {age:.3f} s old (limit {clock.limit_s:.3f} s, '
                                                        'from its measured rate)'))
        if s.action_problem is not None:
            reasons.append(s.action_problem)
        return reasons

    def _limited(self, action: np.ndarray, t: float) -> tuple[np.ndarray, float, list[Reason]]:
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
        v, more = self._bounded(v, t)
        return v, float(a[3]), limits + more

    def _reference(self, t: float) -> tuple[np.ndarray, float, float]:
        """(velocity the arm may still be executing, how much the time since it was sent allows braking and
        speeding up): a twist older than max_hold_s has stopped by the driver's own timeout."""
        cfg, dt = self.config, max(t - self._last_t, 0.0)
        step = min(dt, cfg.period_s)
        ramp = min(cfg.max_accel_mps2, self._last_accel + cfg.max_jerk_mps3 * step) * step
        if dt > cfg.max_hold_s:
            return np.zeros(3), 0.0, ramp
        return self._last_v, cfg.max_accel_mps2 * dt, ramp

    def _bounded(self, desired: np.ndarray, t: float) -> tuple[np.ndarray, list[Reason]]:
        """The velocity closest to `desired` within the workspace bounds and the acceleration limit.

        The box comes first: the arm's current velocity is clipped into the bounds (braking that the invariant
        keeps within max_accel * dt), then the rest of one period's acceleration moves toward the desired
        velocity, also clipped into the bounds; both ends inside the bounds, so is the result."""
        s = self._in
        p_lo, p_hi = self._log.bounds(s.ee_position, s.ee_measured_t, t)
        vmin, vmax, outside = self._guard.velocity_bounds(s.ee_position, p_lo, p_hi)
        reference, brake, ramp = self._reference(t)
        target = np.clip(desired, vmin, vmax)
        base = np.clip(reference, vmin, vmax)
        forced = float(np.linalg.norm(base - reference))
        budget = max(ramp - forced, 0.0)
        change = target - base
        size = float(np.linalg.norm(change))
        v = base + (change if size <= budget else change * (budget / size))
        return v, self._bound_reasons(desired, target, size - budget, forced - brake, outside, p_lo, p_hi)

    def _bound_reasons(self, desired: np.ndarray, target: np.ndarray, accel_excess: float, brake_excess: float,
                       outside: list[str], p_lo: np.ndarray, p_hi: np.ndarray) -> list[Reason]:
        reasons = []
        if accel_excess > 1e-12:
            reasons.append(Reason('accel_limit', f'velocity change {accel_excess:.3f} m/s more than '
                                                 f'{self.config.max_accel_mps2} m/s^2 allows'))
        if outside:
            reasons.append(Reason('outside_workspace', f'EE outside the box {self._guard.describe()} '
                                                       f'({", ".join(outside)}): moving back inward only'))
        elif np.any(np.abs(target - desired) > 1e-12) or brake_excess > 1e-12:
            hard = f', braking {brake_excess:.3f} m/s beyond the acceleration limit' if brake_excess > 1e-12 else ''
            reasons.append(Reason('workspace', f'braking before the box {self._guard.describe()} '
                                               f'(EE within {np.round(p_lo, 3).tolist()}..'
                                               f'{np.round(p_hi, 3).tolist()}){hard}'))
        return reasons


class InterventionLog:
    """Turns the stream of commands into events: an intervention is reported once when it starts and once
    when it clears, however many control steps it lasts. A limit (not a stop) clears only after `linger_s`
    without it, so that a limit that comes and goes every other step is one event, not a line per step."""

    def __init__(self, linger_s: float = 1.0) -> None:
        self.linger_s = linger_s
        self._active: dict[str, Reason] = {}
        self._seen: dict[str, float] = {}
        self.count = 0
        self.last: Reason | None = None

    def update(self, command: Command, t: float) -> tuple[list[Reason], list[str]]:
        """Returns (interventions that started now, codes that cleared now)."""
        now = {r.code: r for r in command.reasons}
        self._seen.update({code: t for code in now})
        started = [r for code, r in now.items() if code not in self._active]
        cleared = [code for code, r in self._active.items()
                   if code not in now and (r.stops or t - self._seen[code] >= self.linger_s)]
        self._active = {**{c: r for c, r in self._active.items() if c not in cleared}, **now}
        self.count += len(started)
        if started:
            self.last = started[-1]
        return started, cleared

    @property
    def active(self) -> list[Reason]:
        return list(self._active.values())


class DownsampleReport:
    """Actions arriving faster than the control rate as one event: reported when `min_dropped` were dropped
    (a single action replaced now and then, by jitter, is no news), and when none was dropped for `quiet_s`;
    not once per dropped action (a 1 kHz source would flood the log). The count is on safety/status."""

    def __init__(self, quiet_s: float = 5.0, min_dropped: int = 5) -> None:
        self.quiet_s = quiet_s
        self.min_dropped = min_dropped
        self._dropped = 0
        self._last_drop_t = -math.inf
        self._first: tuple[float, int] | None = None     # (time, count before) of the first drop of this episode
        self.active = False                              # reported as started, not yet as ended

    def update(self, t: float, dropped: int) -> list[str]:
        """Lines to log (usually none): that down-sampling ended, or started (with how many were dropped)."""
        lines = []
        if self._first is not None and t - self._last_drop_t >= self.quiet_s:
            (start_t, before), was_active = self._first, self.active
            self._first, self.active = None, False
            if was_active:
                lines.append(f'down-sampling ended: {self._dropped - before} actions dropped over '
                             f'{self._last_drop_t - start_t:.1f} s')
        if dropped > self._dropped:
            self._first = self._first or (t, self._dropped)
            self._dropped, self._last_drop_t = dropped, t
            if not self.active and dropped - self._first[1] >= self.min_dropped:
                self.active = True
                lines.append('actions arrive faster than the control rate: down-sampling, the newest action wins')
        return lines
