"""`lamp-ros console`: the operator's terminal UI over the running graph.

  lamp-ros console                       the console (needs a terminal)
  lamp-ros console --status              print the graph's status as JSON after listening 3 s, and exit
  lamp-ros console --ros-args -r __ns:=/arm1

Type an instruction and press Enter to send it (Up/Down: history, Tab: completion from instructions
sent before, seen on the graph, the simulated tasks' phrases and --instructions FILE). Keys work while
typing:

  F1   e-stop on/off          Esc  E-STOP (engages only)
  F2   start episode          F3   stop episode           F4   reset (arm home)
  F5   label success          F6   label failure          F7   control mode: auto > policy > teleop > hold
  F10  quit (Ctrl-C, Ctrl-Q too; the graph keeps running)

The same actions as /commands (for terminals that keep F-keys to themselves): /start /stop /reset
/success /failure /mode [auto|policy|teleop|hold] /estop [on|off] /help /quit. docs/operator.md has more.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from prompt_toolkit.application import Application
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.data_structures import Point
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory, History
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (ConditionalContainer, Float, FloatContainer, FormattedTextControl, HSplit, Layout,
                                   Window)
from prompt_toolkit.layout.controls import BufferControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.styles import Style

from lamp_ros.console import commands, view
from lamp_ros.console.board import Snapshot, StatusBoard
from lamp_ros.paths import data_dir

STYLE = Style.from_dict({
    'estop.on': 'bg:ansired fg:ansiwhite bold',
    'estop.off': 'bg:ansigreen fg:ansiblack',
    'estop.unknown': 'bg:ansiyellow fg:ansiblack',
    'banner': 'bg:ansiyellow fg:ansiblack bold',
    'label': 'bold',
    'value': 'fg:ansicyan',
    'dim': 'fg:ansibrightblack',
    'warn': 'fg:ansiyellow bold',
    'error': 'fg:ansired bold',
    'operator': 'bg:ansimagenta fg:ansiwhite bold',
    'keys': 'reverse',
    'prompt': 'bold',
})
STATUS_ROWS = 10
ESCAPE_WAIT_S = 0.05          # how long a lone Esc waits to be told apart from a key's escape sequence


def sim_phrases() -> list[str]:
    """The simulated tasks' phrases, where the simulator is installed (the workstation, not the robot)."""
    if any(importlib.util.find_spec(m) is None for m in ('mujoco', 'gymnasium', 'sim')):
        return []
    from sim.tasks import DOWNSTREAM_TASKS
    return [phrase for task in DOWNSTREAM_TASKS.values() for phrase in task.phrases]


def read_instructions(path: Path) -> list[str]:
    if not path.is_file():
        raise SystemExit(f'--instructions {path}: no such file (one instruction per line)')
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith('#')]


class InstructionCompleter(Completer):
    """'/' completes commands; anything else completes known instructions (prefix matches first)."""

    def __init__(self, known: Callable[[], Iterable[str]]) -> None:
        self.known = known

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if text.startswith('/'):
            for name, doc in commands.COMMANDS.items():
                if ('/' + name).startswith(text.lower()):
                    yield Completion('/' + name, start_position=-len(text), display_meta=doc)
            return
        query = text.strip().lower()
        if not query:
            return
        candidates = list(dict.fromkeys(self.known()))
        prefix = [c for c in candidates if c.lower().startswith(query)]
        inner = [c for c in candidates if query in c.lower() and c not in prefix]
        for candidate in prefix + inner:
            if candidate.lower() != query:
                yield Completion(candidate, start_position=-len(text))


class ConsoleApp:
    def __init__(self, link, board: StatusBoard, history: History, extra_instructions: list[str]) -> None:
        self.link, self.board = link, board
        self.history = history
        self.extra_instructions = extra_instructions
        self.snap: Snapshot = board.snapshot(time.monotonic())
        self.buffer = Buffer(multiline=False, history=history, completer=InstructionCompleter(self._known),
                             complete_while_typing=True, auto_suggest=AutoSuggestFromHistory(),
                             accept_handler=self._accept)
        self.app: Application = Application(layout=self._layout(), key_bindings=self._keys(), style=STYLE,
                                            full_screen=True, refresh_interval=0.25,
                                            before_render=lambda _: self._refresh())
        self.app.ttimeoutlen = ESCAPE_WAIT_S

    def _refresh(self) -> None:
        self.snap = self.board.snapshot(time.monotonic())

    def _known(self) -> list[str]:
        sent = [s for s in self.history.get_strings() if s.strip() and not s.startswith('/')]
        return list(reversed(sent)) + self.board.known_instructions() + self.extra_instructions

    def _layout(self) -> Layout:
        def log_text():
            return view.log_lines(self.snap, 500)

        log = FormattedTextControl(log_text, focusable=False,
                                   get_cursor_position=lambda: Point(0, max(len(self.snap.log) - 1, 0)))
        body = HSplit([
            Window(FormattedTextControl(lambda: view.estop_bar(self.snap)), height=1),
            ConditionalContainer(Window(FormattedTextControl(lambda: view.banner(self.snap)), wrap_lines=True,
                                        height=Dimension(min=1, max=3)),
                                 filter=Condition(lambda: not self.snap.graph_running)),
            Window(FormattedTextControl(lambda: view.status_lines(self.snap)), height=STATUS_ROWS),
            Window(height=1, char='-', style='class:dim'),
            Window(log, wrap_lines=False),
            Window(FormattedTextControl(view.KEYS_HELP), height=1, style='class:keys'),
            Window(BufferControl(self.buffer, input_processors=[BeforeInput('instruction> ', style='class:prompt')]),
                   height=1),
        ])
        root = FloatContainer(body, floats=[Float(xcursor=True, ycursor=True,
                                                  content=CompletionsMenu(max_height=8, scroll_offset=1))])
        return Layout(root, focused_element=self.buffer)

    def _keys(self) -> KeyBindings:
        kb = KeyBindings()

        def command(name: str, refresh: bool = False) -> Callable[[KeyPressEvent], None]:
            """A key binding doing what the line command /name does (refreshed first where it reads the view)."""
            def handler(event: KeyPressEvent) -> None:
                if refresh:
                    self._refresh()
                self.run(commands.Command(name))
            return handler

        kb.add('f1')(command('estop', refresh=True))
        kb.add('escape', eager=True)(lambda event: self.link.set_estop(True))
        for key, name in (('f2', 'start'), ('f3', 'stop'), ('f4', 'reset'), ('f5', 'success'), ('f6', 'failure')):
            kb.add(key)(command(name))
        kb.add('f7')(command('mode', refresh=True))
        for key in ('f10', 'c-c', 'c-q'):
            kb.add(key)(lambda event: event.app.exit())
        return kb

    def _accept(self, buffer: Buffer) -> bool:
        try:
            command = commands.parse(buffer.text)
        except ValueError as e:
            self.board.log(str(e), 'error')
            return False
        if command is not None:
            self.run(command)
        return False                       # clear the line

    def run(self, command: commands.Command) -> None:
        """Do what a parsed line asks: the same actions as the function keys."""
        handlers = {'instruction': self._instruction, 'start': self._episode, 'stop': self._episode,
                    'reset': self._episode, 'success': self._label, 'failure': self._label, 'mode': self._mode,
                    'estop': self._estop, 'help': self._help, 'quit': self._quit}
        handlers[command.name](command)

    def _instruction(self, command: commands.Command) -> None:
        self.link.send_instruction(command.arg)

    def _episode(self, command: commands.Command) -> None:
        self.link.episode(command.name)

    def _label(self, command: commands.Command) -> None:
        self.link.label(command.name)

    def _mode(self, command: commands.Command) -> None:
        current = self.snap.statuses.get('safety', {}).get('control_mode') or self.snap.mode_topic or 'auto'
        self.link.set_mode(command.arg or commands.next_mode(current))

    def _estop(self, command: commands.Command) -> None:
        if command.arg:
            self.link.set_estop(command.arg == 'on')
        else:
            self.link.toggle_estop(self.snap.estop)

    def _help(self, _command: commands.Command) -> None:
        for cmd, doc in commands.COMMANDS.items():
            self.board.log(f'/{cmd:<8} {doc}')
        self.board.log(view.KEYS_HELP)

    def _quit(self, _command: commands.Command) -> None:
        self.app.exit()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='lamp-ros console', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--instructions', type=Path, default=None,
                   help='file of instructions to complete from, one per line')
    p.add_argument('--history', type=Path, default=None,
                   help='instruction history file (default: <data dir>/console_history)')
    p.add_argument('--status', action='store_true', help='print the graph status as JSON and exit (no terminal UI)')
    p.add_argument('--listen', type=float, default=3.0, metavar='S', help='with --status: listen this long first')
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = parser().parse_args(argv[:split])
    if not args.status and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print('lamp-ros console needs a terminal (stdin and stdout); for scripts use `lamp-ros console --status`',
              file=sys.stderr)
        return 2
    extra = read_instructions(args.instructions) if args.instructions else []
    history_path = args.history or data_dir() / 'console_history'
    history_path.parent.mkdir(parents=True, exist_ok=True)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from lamp_ros.console.link import ConsoleLink, status_json
    rclpy.init(args=['lamp-ros-console', *argv[split:]], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('console')
    board = StatusBoard()
    link = ConsoleLink(node, board)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name='console-ros', daemon=True)
    spinner.start()
    try:
        if args.status:
            time.sleep(max(args.listen, 0.0))
            print(status_json(board))
            return 0
        board.log('console up: type an instruction and press Enter; F1 / Esc e-stop; /help lists the commands')
        ConsoleApp(link, board, FileHistory(str(history_path)), extra + sim_phrases()).app.run()
        return 0
    finally:
        stop.set()
        spinner.join(timeout=2.0)
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    raise SystemExit(main())
