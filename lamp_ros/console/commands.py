"""The console's input line: text is a new instruction; a line starting with '/' is a command (the same
actions as the function keys, for terminals that keep F-keys for themselves)."""
from __future__ import annotations

from dataclasses import dataclass

from lamp_ros.core.arbiter import MODES

COMMANDS: dict[str, str] = {
    'start': 'start an episode (episode/start)',
    'stop': 'stop the episode (episode/stop)',
    'reset': 'stop, arm to home, start again if the graph auto-starts (episode/reset)',
    'success': "label the episode a success (episode/label)",
    'failure': "label the episode a failure (episode/label)",
    'mode': f"control mode: /mode {'|'.join(MODES)} (no argument: next mode)",
    'estop': 'e-stop: /estop on|off (no argument: toggle)',
    'help': 'list the commands and keys',
    'quit': 'leave the console (the graph keeps running)',
}


@dataclass(frozen=True)
class Command:
    name: str            # 'instruction' or one of COMMANDS
    arg: str = ''


def parse(line: str) -> Command | None:
    """None for an empty line; ValueError (with what would be valid) for a bad command."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith('/'):
        return Command('instruction', ' '.join(text.split()))
    name, _, arg = text[1:].partition(' ')
    name, arg = name.lower(), arg.strip().lower()
    if name not in COMMANDS:
        raise ValueError(f"unknown command /{name}; commands: {', '.join('/' + c for c in COMMANDS)}")
    if name == 'mode' and arg and arg not in MODES:
        raise ValueError(f"/mode takes one of {', '.join(MODES)}, got {arg!r}")
    if name == 'estop' and arg not in ('', 'on', 'off'):
        raise ValueError(f"/estop takes on or off, got {arg!r}")
    if name not in ('mode', 'estop') and arg:
        raise ValueError(f'/{name} takes no argument, got {arg!r}')
    return Command(name, arg)


def next_mode(mode: str) -> str:
    """The mode F7 switches to: auto -> policy -> teleop -> hold -> auto."""
    return MODES[(MODES.index(mode) + 1) % len(MODES)] if mode in MODES else MODES[0]
