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


def status_lines(s: Snapshot) -> Fragments:
    safety, policy = s.statuses.get('safety', {}), s.statuses.get('policy', {})
    episode, learner, teleop = s.statuses.get('episode', {}), s.statuses.get('learner', {}), s.statuses.get('teleop', {})
    out: Fragments = []

    def line(label: str, *parts: tuple[str, str]) -> None:
        out.append(('class:label', f' {label:<12}'))
        out.extend(parts)
        out.append(('', '\n'))

    line('instruction', ('class:value', s.instruction or '(none yet: type one below)'))

    mode = safety.get('control_mode') or s.mode_topic or '?'
    if not s.graph_running:
        control = ('class:dim', 'unknown')
    elif safety.get('operator'):
        control = ('class:operator', ' OPERATOR in control (intervention) ')
    elif mode == 'hold':
        control = ('class:warn', 'nobody: arm held')
    else:
        control = ('class:value', 'policy in control')
    line('control', ('', f'mode {mode}  '), control)

    if episode:
        success = 'yes' if episode.get('success') else 'no'
        line('episode', ('class:value', f"#{_value(episode, 'episode')} {_value(episode, 'state')}"),
             ('', f"  step {_value(episode, 'step')}/{_value(episode, 'max_steps')}"
                  f"  interventions {_value(episode, 'interventions', '0')}  success {success}"
                  f"  label {_value(episode, 'label')}"
                  + (f"  ({episode['stop_reason']})" if episode.get('stop_reason') else '')))
    else:
        line('episode', ('class:dim', 'no episode/status (episode node not running)'))

    r = s.rates
    speed = '' if s.command_speed is None else f' ({s.command_speed:.3f} m/s)'
    line('rates', ('', f"camera {r['camera']:.1f} Hz  policy {r['policy']:.1f} Hz  command {r['command']:.1f} Hz{speed}"
                       f"  teleop {r['teleop']:.1f} Hz"))

    if s.reward is None:
        line('reward', ('class:dim', 'none yet'))
    else:
        line('reward', ('class:value', f'{s.reward[0]:.3f}'), ('', f'  (frame {s.reward[1]})'))

    if policy:
        state = _value(policy, 'state')
        line('policy', ('class:error' if state == 'refused' else 'class:value', state),
             ('', f"  model {_value(policy, 'model_version')}  swaps {_value(policy, 'swaps', '0')}"
                  + (f"  {policy['reason']}" if policy.get('reason') else '')
                  + (f"  update: {policy['update']}" if policy.get('update') else '')))
    else:
        line('policy', ('class:dim', 'no policy/status'))

    if safety:
        state = _value(safety, 'state')
        style = 'class:value' if state == 'ok' else 'class:warn'
        line('safety', (style, state),
             ('', f"  interventions {_value(safety, 'interventions', '0')}  last: {_value(safety, 'last_reason')}"
                  + (f"  active: {', '.join(safety['reasons'])}" if safety.get('reasons') else '')))
    else:
        line('safety', ('class:dim', 'no safety/status'))

    if learner:
        connected = learner.get('connected')
        line('learner', ('class:value' if connected else 'class:warn', 'connected' if connected else 'DISCONNECTED'),
             ('', f"  backlog {_value(learner, 'backlog', '0')}  chunks {_value(learner, 'chunks_acked', '0')}/"
                  f"{_value(learner, 'chunks_sent', '0')} acked  steps {_value(learner, 'steps_recorded', '0')}"
                  f"  bundle {_value(learner, 'bundle_version')}"))
    else:
        line('learner', ('class:dim', 'no learner/status (no actor node: deploy graph)'))

    if teleop and s.status_age.get('teleop', float('inf')) <= GRAPH_TIMEOUT_S:
        state = _value(teleop, 'state')
        style = {'engaged': 'class:operator', 'missing': 'class:error'}.get(state, 'class:value')
        line('teleop', (style, f"{_value(teleop, 'device')} {state}"),
             ('', f"  {teleop['message']}" if teleop.get('message') else f"  speed {_value(teleop, 'speed')}"))
    else:
        line('teleop', ('class:dim', 'no teleop node (run `lamp-ros teleop` in another terminal)'))
    return out


def log_lines(s: Snapshot, rows: int) -> Fragments:
    out: Fragments = []
    for entry in s.log[-rows:] if rows > 0 else ():
        out.append(('class:error' if entry.level == 'error' else 'class:log', f' {entry.clock} {entry.text}\n'))
    return out
