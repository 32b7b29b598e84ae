"""The operator console: its input line, status view and completion without a terminal; then the real console
in a pseudo-terminal (its screen read back through a terminal emulator), alone and against the whole sim graph
(`lamp-ros deploy`) with the recorder and keyboard teleop: instruction, episode start, e-stop, release,
operator takeover shown, success label reaching the recorder, control mode."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pexpect
import pyte
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.application import create_app_session
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lamp_ros import contract as c
from lamp_ros.console import commands, view
from lamp_ros.console.app import ConsoleApp, InstructionCompleter
from lamp_ros.console.board import RateMeter, StatusBoard
from lamp_ros.ros.convert import twist_linear
from models.episodes import load_episode
from tests.test_teleop import spawn_keyboard_teleop, stop_terminal

F = {1: '\x1bOP', 2: '\x1bOQ', 3: '\x1bOR', 4: '\x1bOS', 5: '\x1b[15~', 6: '\x1b[17~', 7: '\x1b[18~', 10: '\x1b[21~'}
ESC = '\x1b'
PERIOD = 0.1


def test_input_line_commands():
    assert commands.parse('  push   the button ') == commands.Command('instruction', 'push the button')
    assert commands.parse('') is None
    assert commands.parse('/START') == commands.Command('start')
    assert commands.parse('/mode teleop') == commands.Command('mode', 'teleop')
    assert commands.parse('/estop on') == commands.Command('estop', 'on')
    for bad, why in (('/fly', 'unknown command'), ('/mode turbo', '/mode takes'), ('/estop maybe', 'on or off'),
                     ('/start now', 'takes no argument')):
        with pytest.raises(ValueError, match=why):
            commands.parse(bad)
    assert [commands.next_mode(m) for m in ('auto', 'policy', 'teleop', 'hold', '?')] == \
        ['policy', 'teleop', 'hold', 'auto', 'auto']


def test_rates_status_view_and_banner():
    meter = RateMeter(window_s=2.0)
    for i in range(20):
        meter.tick(100.0 + i * 0.1)
    assert meter.rate(101.95) == pytest.approx(10.0) and meter.rate(110.0) == 0.0

    board = StatusBoard()
    s = board.snapshot(time.monotonic())
    assert not s.graph_running and 'GRAPH NOT RUNNING' in view.plain_text(view.banner(s))
    assert f"ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID') or '0 (unset)'}" in view.plain_text(view.banner(s))
    assert s.estop is None and 'unknown' in view.plain_text(view.estop_bar(s))
    now = time.monotonic()
    board.on_status('safety', json.dumps({'state': 'estop', 'estop': True, 'control_mode': 'auto', 'operator': True,
                                          'interventions': 2, 'last_reason': 'estop', 'reasons': ['estop']}), now)
    board.on_status('episode', json.dumps({'episode': 4, 'state': 'running', 'step': 7, 'max_steps': 150,
                                           'instruction': 'open the drawer', 'interventions': 3}), now)
    board.on_status('policy', 'not json', now)
    board.on_reward(0.25, 7)
    s = board.snapshot(now)
    assert s.graph_running and view.banner(s) == []
    assert 'E-STOP ENGAGED' in view.plain_text(view.estop_bar(s))
    text = view.plain_text(view.status_lines(s))
    assert 'OPERATOR in control' in text and '#4 running' in text and 'step 7/150' in text and '0.250' in text
    assert 'interventions 3' in text and 'no learner/status' in text
    log = view.plain_text(view.log_lines(s, 10))
    assert 'policy/status ignored: not JSON' in log and 'episode 4 started' in log
    assert 'open the drawer' in board.known_instructions()


def test_completion_of_commands_and_known_instructions():
    completer = InstructionCompleter(lambda: ['push the button', 'press the button', 'open the drawer'])

    def complete(text):
        return [x.text for x in completer.get_completions(Document(text), CompleteEvent())]

    assert complete('pu') == ['push the button']
    assert complete('butt') == ['push the button', 'press the button']
    assert complete('/st') == ['/start', '/stop']
    assert complete('') == []


class RecordingLink:
    """Speaks ConsoleLink's interface and records what the console asked of the graph."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def test_keys_and_line_commands_ask_the_graph_the_same():
    """Every function key does what its line command does (one handler each), read off a headless console."""
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        link, board = RecordingLink(), StatusBoard()
        app = ConsoleApp(link, board, InMemoryHistory(), [])
        keys = {b.keys[0].value: b.handler for b in app.app.key_bindings.bindings}
        lines = {'f1': '/estop', 'f2': '/start', 'f3': '/stop', 'f4': '/reset', 'f5': '/success', 'f6': '/failure',
                 'f7': '/mode'}
        for key, line in lines.items():
            keys[key](None)
            by_key = link.calls.pop()
            app.run(commands.parse(line))
            assert link.calls.pop() == by_key, (key, line)
        app.run(commands.parse('/estop on'))
        app.run(commands.parse('/mode hold'))
        app.run(commands.parse('push  the button'))
        assert link.calls == [('set_estop', True), ('set_mode', 'hold'), ('send_instruction', 'push the button')]
        app.run(commands.parse('/help'))
        assert any('/estop' in line.text for line in board.snapshot(time.monotonic()).log)


class Terminal:
    """A program in a real pseudo-terminal, its screen kept by a VT100 emulator (what a person would see)."""

    def __init__(self, args: list[str], rows: int = 32, cols: int = 140) -> None:
        self.child = pexpect.spawn(sys.executable, args, env=dict(os.environ, TERM='xterm'),
                                   dimensions=(rows, cols), encoding='utf-8')
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)

    def pump(self, seconds: float = 0.05) -> None:
        end = time.monotonic() + seconds
        while True:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.02))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return
            if time.monotonic() >= end:
                return

    @property
    def text(self) -> str:
        return '\n'.join(self.screen.display)

    def wait_for(self, predicate, timeout: float, probe=None) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.05)
            if probe is not None:
                probe.spin_for(0.02)
            if predicate(self.text):
                return True
        return predicate(self.text)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def quit(self) -> int:
        self.send(F[10])
        self.child.expect(pexpect.EOF, timeout=15)
        self.child.close()
        return self.child.exitstatus


def console_args(tmp_path) -> list[str]:
    return ['-m', 'lamp_ros.console', '--history', str(tmp_path / 'history')]


def test_console_without_a_graph_shows_the_banner_and_quits(tmp_path):
    term = Terminal(console_args(tmp_path))
    assert term.wait_for(lambda t: 'GRAPH NOT RUNNING' in t and 'instruction>' in t, 30), term.text
    term.send('/start\r')
    assert term.wait_for(lambda t: 'episode/start is not available' in t, 5), term.text
    assert term.quit() == 0


def moving(msg) -> bool:
    return np.linalg.norm(twist_linear(msg)) > 1e-9


def test_console_drives_the_sim_graph(probe, make_bundle, tmp_path):
    rec = {t.name: probe.record(t) for t in (c.EE_TWIST_CMD, c.INSTRUCTION, c.EPISODE_STATUS, c.SAFETY_STATUS)}
    twists, statuses = rec[c.EE_TWIST_CMD.name], rec[c.EPISODE_STATUS.name]
    graph_log, recorder_log = tmp_path / 'deploy.log', tmp_path / 'recorder.log'
    graph = subprocess.Popen([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--instruction', 'push button',
                              '--bundle', str(make_bundle(128))], stdout=open(graph_log, 'w'), stderr=subprocess.STDOUT)
    out = tmp_path / 'episodes'
    recorder = subprocess.Popen([sys.executable, '-m', 'lamp_ros.record', '--out', str(out)],
                                stdout=open(recorder_log, 'w'), stderr=subprocess.STDOUT)
    term = None
    episode = lambda: json.loads(statuses[-1][1].data)  # noqa: E731
    safety = lambda: json.loads(rec[c.SAFETY_STATUS.name][-1][1].data)  # noqa: E731
    try:
        # DDS discovery between this test's node and the graph can lag: wait for every topic asserted on
        assert probe.wait_for(lambda: all(rec.values()) and any(moving(m) for _, m in twists), 60), \
            graph_log.read_text()
        term = Terminal(console_args(tmp_path))
        assert term.wait_for(lambda t: 'policy in control' in t and 'camera 0.0 Hz' not in t and 'e-stop released' in t
                             and 'model tiny-test' in t and 'GRAPH NOT RUNNING' not in t, 30, probe), term.text

        # an instruction typed and sent with Enter is published (by the prompt node)
        term.send('press the button\r')
        assert probe.wait_for(lambda: rec[c.INSTRUCTION.name][-1][1].data == 'press the button', 10), term.text
        assert term.wait_for(lambda t: "instruction 'press the button' set" in t, 5, probe), term.text

        # F2 starts an episode (the recorder, once it knows the episode node, records it)
        assert probe.wait_for(lambda: 'episode node found' in recorder_log.read_text(), 30), recorder_log.read_text()
        assert term.wait_for(lambda t: 'episode node not running' not in t, 30, probe), term.text   # discovery
        term.send(F[2])
        assert probe.wait_for(lambda: episode()['state'] == 'running', 10), term.text
        assert episode()['instruction'] == 'press the button'
        assert term.wait_for(lambda t: f"#{episode()['episode']} running" in t, 5, probe), term.text
        probe.spin_for(1.0)

        # Esc: e-stop. Zero commands within two control periods, and the screen says so
        t_stop = time.monotonic()
        term.send(ESC)
        assert term.wait_for(lambda t: 'E-STOP ENGAGED' in t, 5, probe), term.text
        probe.spin_for(1.0)
        late = [m for t, m in twists if t > t_stop + 0.05 + 2 * PERIOD]
        assert late and not any(moving(m) for m in late), 'the arm was commanded to move under e-stop'
        assert safety()['estop']
        # F1 releases it: motion again
        term.send(F[1])
        assert term.wait_for(lambda t: 'e-stop released' in t, 5, probe), term.text
        assert probe.wait_for(lambda: moving(twists[-1][1]), 5), 'no motion after the release'

        # the operator takes over with keyboard teleop: the console shows the intervention
        teleop = spawn_keyboard_teleop(tmp_path, speed=0.3)
        try:
            assert term.wait_for(lambda t: 'keyboard ready' in t, 20, probe), term.text
            def intervening(text: str) -> bool:
                return 'OPERATOR in control' in text and 'keyboard engaged' in text

            end = time.monotonic() + 5.0
            while not intervening(term.text) and time.monotonic() < end:
                teleop.send('a')                                  # held key: auto-repeat
                term.pump(0.03)
                probe.spin_for(0.01)
            assert intervening(term.text), term.text
        finally:
            assert stop_terminal(teleop) == 0
        assert term.wait_for(lambda t: 'policy in control' in t, 5, probe), term.text      # released: policy again

        # F5: success label -> the episode node stops the episode as a success -> the recorder saves it so
        term.send(F[5])
        assert probe.wait_for(lambda: episode()['state'] == 'stopped' and episode()['label'] == 'success', 10)
        assert episode()['success'] and episode()['success_source'] == 'label'
        assert term.wait_for(lambda t: 'label success' in t, 5, probe), term.text
        assert probe.wait_for(lambda: list(out.glob('*.npz')), 20), recorder_log.read_text()
        saved = load_episode(sorted(out.glob('*.npz'))[0])
        assert saved.success and json.loads(saved.meta)['label'] == 'success'
        assert saved.instruction == 'press the button' and saved.length >= 5

        # F7: control mode auto -> policy, as the safety node reports it
        term.send(F[7])
        assert probe.wait_for(lambda: safety()['control_mode'] == 'policy', 5), term.text
        assert term.wait_for(lambda t: 'mode policy' in t, 5, probe), term.text
        assert term.quit() == 0
        term = None
    finally:
        if term is not None:
            term.child.close(force=True)
        recorder.send_signal(signal.SIGINT)
        graph.send_signal(signal.SIGINT)
        assert recorder.wait(timeout=20) == 0, recorder_log.read_text()
        assert graph.wait(timeout=30) == 0, graph_log.read_text()


def test_lamp_ros_runs_the_operator_tools():
    for tool in ('console', 'teleop', 'record'):
        out = subprocess.run([sys.executable, '-m', 'lamp_ros.cli', tool, '--help'], capture_output=True, text=True)
        assert out.returncode == 0 and f'usage: lamp-ros {tool}' in out.stdout, out.stderr
    out = subprocess.run([sys.executable, '-m', 'lamp_ros.cli', 'console'], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and 'needs a terminal' in out.stderr
