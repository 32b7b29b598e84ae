"""Teleop: device mappings (keyboard timing, SpaceMouse and gamepad readings), the session's gripper rule,
missing devices (clear message, node stays up), and keyboard teleop in a real pseudo-terminal moving the
simulated arm through the safety node."""
import json
import os
import sys
import time

import subprocess

import numpy as np
import pexpect
import pytest
import yaml

from lamp_ros import contract as c
from lamp_ros.paths import config_file
from lamp_ros.ros.convert import pose_arrays
from lamp_ros.teleop.device import DeviceInput, DeviceUnavailable, deadzone, open_device
from lamp_ros.teleop.gamepad import GamepadConfig, GamepadMapper
from lamp_ros.teleop.keyboard import KeyboardConfig, KeyboardMapper, KeyTokenizer
from lamp_ros.teleop.session import TeleopSession
from lamp_ros.teleop.spacemouse import SpaceMouseConfig, SpaceMouseMapper


def test_deadzone_is_continuous_and_saturates():
    assert deadzone(0.05, 0.1) == 0.0 and deadzone(-0.1, 0.1) == 0.0
    assert deadzone(0.1 + 1e-9, 0.1) == pytest.approx(0.0, abs=1e-6)
    assert deadzone(0.55, 0.1) == pytest.approx(0.5) and deadzone(-1.0, 0.1) == -1.0 and deadzone(3.0, 0.1) == 1.0
    with pytest.raises(ValueError, match='deadzone'):
        deadzone(0.5, 1.0)


def test_keyboard_tap_moves_for_key_hold_and_auto_repeat_stops_soon_after_release():
    cfg = KeyboardConfig(key_hold_s=0.5, repeat_hold_s=0.2, repeat_gap_s=0.12)
    kb = KeyboardMapper(cfg)
    assert not kb.read(0.0).engaged
    kb.on_key('w', 10.0)                                   # a single tap
    reading = kb.read(10.4)
    assert reading.engaged and reading.motion.tolist() == [1.0, 0.0, 0.0]
    assert not kb.read(10.51).engaged
    for i in range(10):                                    # held: the terminal auto-repeats every 33 ms
        kb.on_key('d', 20.0 + 0.033 * i)
    last = 20.0 + 0.033 * 9
    assert kb.read(last + 0.15).motion.tolist() == [0.0, -1.0, 0.0]
    assert not kb.read(last + 0.21).engaged                # released: stops after repeat_hold_s, not key_hold_s
    kb.on_key('W', 30.0)                                   # Caps Lock makes no difference
    kb.on_key('r', 30.0)
    assert kb.read(30.1).motion.tolist() == [1.0, 0.0, 1.0]
    kb.on_key(' ', 30.2)                                   # halt: still engaged (operator holds the arm), no motion
    halted = kb.read(30.3)
    assert halted.engaged and not halted.motion.any()
    kb.on_key('c', 31.0)
    assert kb.read(31.1).gripper == 'close' and kb.read(31.2).gripper is None   # a command is given once
    kb.on_key('-', 32.0)
    kb.on_key('s', 32.0)
    assert kb.read(32.1).motion.tolist() == [-0.75, 0.0, 0.0]


def test_key_tokenizer_understands_arrows_and_drops_other_escape_sequences():
    t = KeyTokenizer()
    assert t.feed('w\x1b[A\x1b[15~a\x1bOD') == ['w', 'up', 'a', 'left']    # F5 is dropped whole, not read as letters
    assert t.feed('\x1b[') == [] and t.feed('6~s') == ['pagedown', 's']   # a sequence split across reads


def test_spacemouse_and_gamepad_mappings():
    sm = SpaceMouseMapper(SpaceMouseConfig(deadzone=0.1, axis_signs=(1.0, -1.0, 1.0)))
    idle = sm.map((0.05, -0.02, 0.0), [0, 0])
    assert not idle.engaged and not idle.motion.any()
    pushed = sm.map((0.55, 0.55, -1.0), [0, 0])
    assert pushed.engaged and pushed.motion == pytest.approx([0.5, -0.5, -1.0])
    pressed = sm.map((0.0, 0.0, 0.0), [1, 0])
    assert pressed.engaged and pressed.gripper == 'close'
    assert sm.map((0.0, 0.0, 0.0), [1, 0]).gripper is None              # held: no repeated command
    assert sm.map((0.0, 0.0, 0.0), [0, 1]).gripper == 'open'

    pad = GamepadMapper(GamepadConfig())                                 # RB (5) is the dead-man button
    axes = [0.0, -1.0, 0.0, 0.0, 0.5, 0.0]                               # left stick forward, right stick back
    assert not pad.map(axes, [0] * 8).engaged                            # no dead-man: the stick does nothing
    held = pad.map(axes, [0, 0, 0, 0, 0, 1, 0, 0])
    assert held.engaged and held.motion == pytest.approx([1.0, 0.0, -(0.5 - 0.15) / 0.85])
    assert pad.map(axes, [1, 0, 0, 0, 0, 1, 0, 0]).gripper == 'close'
    free = GamepadMapper(GamepadConfig(deadman_button=-1))
    assert free.map(axes, [0] * 8).engaged and not free.map([0.1] * 6, [0] * 8).engaged


def test_session_keeps_the_commanded_gripper_when_the_operator_takes_over():
    s = TeleopSession(speed=0.5)
    assert s.step(DeviceInput()) is None                                 # not engaged: nothing to publish
    s.on_commanded_gripper(-1.0)                                          # the policy closed the gripper on an object
    action = s.step(DeviceInput(np.array([1.0, 0.0, -1.0]), True))
    assert action.tolist() == [0.5, 0.0, -0.5, -1.0]                      # takeover keeps it closed
    assert s.step(DeviceInput(np.zeros(3), True, 'open'))[3] == 1.0
    assert s.step(DeviceInput()) is None and not s.engaged
    s.on_commanded_gripper(1.0)
    assert s.step(DeviceInput(np.zeros(3), True))[3] == 1.0
    with pytest.raises(ValueError, match='speed'):
        TeleopSession(speed=0.0)


def test_missing_devices_give_a_clear_message(monkeypatch):
    monkeypatch.setenv('SDL_VIDEODRIVER', 'dummy')
    with pytest.raises(DeviceUnavailable, match='SpaceMouse'):         # no hidapi library or no device here
        open_device('spacemouse', SpaceMouseConfig())
    with pytest.raises(DeviceUnavailable, match='no gamepad found'):
        open_device('gamepad', GamepadConfig())
    with pytest.raises(ValueError, match='unknown teleop device'):
        open_device('theremin', None)


def start_teleop(nodes, tmp_path, params: dict) -> None:
    """The teleop node as a process, from its config files like the graph's nodes (it is no graph node: the
    operator starts it, often in a terminal of its own)."""
    overrides = tmp_path / 'teleop_params.yaml'
    overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
    log = tmp_path / 'teleop.log'
    nodes.logs['teleop'] = log
    nodes.procs['teleop'] = subprocess.Popen(
        [sys.executable, '-m', 'lamp_ros.nodes.teleop', '--ros-args', '-r', '__node:=teleop',
         '--params-file', str(config_file('common.yaml')), '--params-file', str(config_file('teleop.yaml')),
         '--params-file', str(overrides)], stdout=open(log, 'w'), stderr=subprocess.STDOUT,
        env=dict(os.environ, SDL_VIDEODRIVER='dummy'))


def test_teleop_node_without_its_device_stays_up_and_says_why(nodes, probe, tmp_path):
    statuses = probe.record(c.TELEOP_STATUS)
    start_teleop(nodes, tmp_path, {'device': 'gamepad', 'retry_s': 0.5})
    assert probe.wait_for(lambda: statuses, 30), nodes.log('teleop')
    status = json.loads(statuses[-1][1].data)
    assert status['device'] == 'gamepad' and status['state'] == 'missing' and 'no gamepad found' in status['message']
    probe.spin_for(1.5)                                                   # a few retries later
    assert nodes.alive('teleop')
    assert nodes.log('teleop').count('no gamepad found') == 1             # said once, not at every retry


def spawn_keyboard_teleop(tmp_path, speed: float = 1.0) -> pexpect.spawn:
    """The teleop node with the keyboard, in a real pseudo-terminal (as an operator runs it)."""
    return pexpect.spawn(sys.executable, ['-m', 'lamp_ros.teleop.cli', '--device', 'keyboard', '--speed', str(speed)],
                         env=dict(os.environ, TERM='xterm'), dimensions=(24, 100), encoding='utf-8',
                         logfile=open(tmp_path / 'teleop_terminal.log', 'w'), timeout=30)


def stop_terminal(terminal: pexpect.spawn) -> int:
    """Ctrl-C, as the operator would: the node exits cleanly and restores the terminal."""
    terminal.sendintr()
    terminal.expect(pexpect.EOF, timeout=15)
    terminal.close()
    return terminal.exitstatus


def hold_key(terminal: pexpect.spawn, key: str, seconds: float, probe, period: float = 0.03) -> None:
    """Like a held key: one press, then auto-repeat."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        terminal.send(key)
        probe.spin_for(period)


def test_keyboard_teleop_moves_the_simulated_end_effector(nodes, probe, tmp_path):
    nodes.start('sim_arm', {'image_size': [32, 32], 'randomize': False})
    nodes.start('safety', {'startup_hold_s': 0.2})
    poses, actions = probe.record(c.EE_POSE), probe.record(c.TELEOP_ACTION)
    statuses, teleop = probe.record(c.SAFETY_STATUS), probe.record(c.TELEOP_STATUS)
    assert probe.wait_for(lambda: poses and statuses, 30), nodes.log('sim_arm') + nodes.log('safety')
    terminal = spawn_keyboard_teleop(tmp_path)
    try:
        terminal.expect('keyboard teleop')
        # DDS discovery of the new process can lag: wait until its status reaches us
        assert probe.wait_for(lambda: teleop and json.loads(teleop[-1][1].data)['state'] == 'ready', 20)
        probe.spin_for(0.5)
        start = pose_arrays(poses[-1][1])[0]
        moved_x = lambda: pose_arrays(poses[-1][1])[0][0] - start[0]  # noqa: E731
        # held up to 10 s: the safety node may discover the new process later than the probe did
        end = time.monotonic() + 10.0
        while moved_x() < 0.06 and time.monotonic() < end:
            hold_key(terminal, 'w', 0.3, probe)                           # +x
        assert actions, terminal.before
        probe.spin_for(0.5)
        moved = pose_arrays(poses[-1][1])[0] - start
        assert moved[0] > 0.05 and abs(moved[1]) < 0.01, f'end effector moved {moved}'
        assert all(np.asarray(m.data)[0] == pytest.approx(1.0) for _, m in actions)
        # released: teleop stops sending, the arm stands still
        n = len(actions)
        probe.spin_for(1.0)
        assert len(actions) - n <= 6                                      # at most the key-hold tail
        still = pose_arrays(poses[-1][1])[0]
        probe.spin_for(0.5)
        assert np.linalg.norm(pose_arrays(poses[-1][1])[0] - still) < 0.002
        hold_key(terminal, '\x1b[6~', 1.0, probe)                         # PageDown: -z
        probe.spin_for(0.3)
        assert pose_arrays(poses[-1][1])[0][2] < still[2] - 0.02
    finally:
        status = stop_terminal(terminal)
    assert status == 0, open(tmp_path / 'teleop_terminal.log').read()
