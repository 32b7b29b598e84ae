"""The console's screen as lines of (style class, text) fragments: prompt_toolkit draws them; tests read
them as plain text. Styles are class names only (app.STYLE gives them colours)."""
from __future__ import annotations

import os
from typing import Any

from lamp_ros.console.board import GRAPH_TIMEOUT_S, Snapshot

Fragments = list[tuple[str, str]]
KEYS_HELP = ('F1 e-stop on/off  Esc E-STOP  F2 start  F3 stop  F4 reset  F5 success  F6 failure  F7 mode  '
             'F10 quit  |  /help')


def plain_text(fragments: Fragments) -> str:
    return ''.join(text for _, text in fragments)


def estop_bar(s: Snapshot) -> Fragments:
    if s.estop is True:
        return [('class:estop.on', ' E-STOP ENGAGED: the arm is stopped. F1 releases it. ')]
    if s.estop is False:
        return [('class:estop.off', ' e-stop released '), ('', ' F1 or Esc engages it')]
    return [('class:estop.unknown', ' e-stop state unknown (no safety node) '), ('', ' F1 or Esc engages it')]


def banner(s: Snapshot) -> Fragments:
    """Empty while the graph runs."""
    if s.graph_running:
        return []
    age = s.status_age.get('safety')
    since = 'never heard from the safety node' if age is None else f'no safety/status for {age:.0f} s'
    domain = os.environ.get('ROS_DOMAIN_ID') or '0 (unset)'
    return [('class:banner', f' GRAPH NOT RUNNING: {since} (> {GRAPH_TIMEOUT_S:g} s) on ROS_DOMAIN_ID {domain}. '
                             'Start it with `lamp-ros deploy` (or finetune), or set the graph\'s ROS_DOMAIN_ID '
                             'here. Commands are still sent. ')]


def _value(d: dict[str, Any], key: str, default: str = '-') -> str:
    v = d.get(key)
    return default if v is None or v == '' else str(v)


Row = tuple[str, list[tuple[str, str]]]            # a label and its fragments


def status_lines(s: Snapshot) -> Fragments:
    """One line a part of the graph, each from its node's status topic (or what is missing)."""
    out: Fragments = []
    for label, parts in (_instruction_row(s), _control_row(s), _episode_row(s), _rates_row(s), _reward_row(s),
                         _policy_row(s), _safety_row(s), _learner_row(s), _teleop_row(s)):
        out += [('class:label', f' {label:<12}'), *parts, ('', '\n')]
    return out


def _instruction_row(s: Snapshot) -> Row:
    return 'instruction', [('class:value', s.instruction or '(none yet: type one below)')]


def _control_row(s: Snapshot) -> Row:
    safety = s.statuses.get('safety', {})
    mode = safety.get('control_mode') or s.mode_topic or '?'
    if not s.graph_running:
        control = ('class:dim', 'unknown')
    elif safety.get('operator'):
        control = ('class:operator', ' OPERATOR in control (intervention) ')
    elif mode == 'hold':
        control = ('class:warn', 'nobody: arm held')
    else:
        control = ('class:value', 'policy in control')
    return 'control', [('', f'mode {mode}  '), control]


def _episode_row(s: Snapshot) -> Row:
    episode = s.statuses.get('episode', {})
    if not episode:
        return 'episode', [('class:dim', 'no episode/status (episode node not running)')]
    success = 'yes' if episode.get('success') else 'no'
    return 'episode', [('class:value', f"#{_value(episode, 'episode')} {_value(episode, 'state')}"),
                       ('', f"  step {_value(episode, 'step')}/{_value(episode, 'max_steps')}"
                            f"  interventions {_value(episode, 'interventions', '0')}  success {success}"
                            f"  label {_value(episode, 'label')}"
                            + (f"  ({episode['stop_reason']})" if episode.get('stop_reason') else ''))]


def _rates_row(s: Snapshot) -> Row:
    r = s.rates
    speed = '' if s.command_speed is None else f' ({s.command_speed:.3f} m/s)'
    return 'rates', [('', f"camera {r['camera']:.1f} Hz  policy {r['policy']:.1f} Hz  command {r['command']:.1f} Hz"
                          f"{speed}  teleop {r['teleop']:.1f} Hz")]


def _reward_row(s: Snapshot) -> Row:
    if s.reward is None:
        return 'reward', [('class:dim', 'none yet')]
    return 'reward', [('class:value', f'{s.reward[0]:.3f}'), ('', f'  (frame {s.reward[1]})')]


def _policy_row(s: Snapshot) -> Row:
    policy = s.statuses.get('policy', {})
    if not policy:
        return 'policy', [('class:dim', 'no policy/status')]
    state = _value(policy, 'state')
    return 'policy', [('class:error' if state == 'refused' else 'class:value', state),
                      ('', f"  model {_value(policy, 'model_version')}  swaps {_value(policy, 'swaps', '0')}"
                           + (f"  {policy['reason']}" if policy.get('reason') else '')
                           + (f"  update: {policy['update']}" if policy.get('update') else ''))]


def _safety_row(s: Snapshot) -> Row:
    safety = s.statuses.get('safety', {})
    if not safety:
        return 'safety', [('class:dim', 'no safety/status')]
    state = _value(safety, 'state')
    return 'safety', [('class:value' if state == 'ok' else 'class:warn', state),
                      ('', f"  interventions {_value(safety, 'interventions', '0')}  last: "
                           f"{_value(safety, 'last_reason')}"
                           + (f"  active: {', '.join(safety['reasons'])}" if safety.get('reasons') else ''))]


def _learner_row(s: Snapshot) -> Row:
    learner = s.statuses.get('learner', {})
    if not learner:
        return 'learner', [('class:dim', 'no learner/status (no actor node: deploy graph)')]
    connected = learner.get('connected')
    chunks = f"{_value(learner, 'chunks_acked', '0')}/{_value(learner, 'chunks_sent', '0')}"
    return 'learner', [('class:value' if connected else 'class:warn', 'connected' if connected else 'DISCONNECTED'),
                       ('', f"  backlog {_value(learner, 'backlog', '0')}  chunks {chunks} acked  steps "
                            f"{_value(learner, 'steps_recorded', '0')}  bundle {_value(learner, 'bundle_version')}")]


def _teleop_row(s: Snapshot) -> Row:
    teleop = s.statuses.get('teleop', {})
    if not teleop or s.status_age.get('teleop', float('inf')) > GRAPH_TIMEOUT_S:
        return 'teleop', [('class:dim', 'no teleop node (run `lamp-ros teleop` in another terminal)')]
    state = _value(teleop, 'state')
    style = {'engaged': 'class:operator', 'missing': 'class:error'}.get(state, 'class:value')
    detail = f"  {teleop['message']}" if teleop.get('message') else f"  speed {_value(teleop, 'speed')}"
    return 'teleop', [(style, f"{_value(teleop, 'device')} {state}"), ('', detail)]


def log_lines(s: Snapshot, rows: int) -> Fragments:
    out: Fragments = []
    for entry in s.log[-rows:] if rows > 0 else ():
        out.append(('class:error' if entry.level == 'error' else 'class:log', f' {entry.clock} {entry.text}\n'))
    return out
