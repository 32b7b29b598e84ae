"""The robot computer's install (scripts/setup.sh --robot: no torch, no simulator): the workstation's tools say in
one line that they need the workstation install; anything else missing is still an error."""
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from lamp_ros import entry


def test_a_workstation_tool_without_torch_says_so_in_one_line(monkeypatch, capsys):
    def no_torch(name):
        raise ModuleNotFoundError("No module named 'torch'", name='torch')
    monkeypatch.setattr(importlib, 'import_module', no_torch)
    assert entry.run_tool('lamp-train', 'training.cli') == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'needs the workstation install' in err and "'torch'" in err


def test_another_missing_module_is_not_hidden(monkeypatch):
    def broken(name):
        raise ModuleNotFoundError("No module named 'lamp_ros.typo'", name='lamp_ros.typo')
    monkeypatch.setattr(importlib, 'import_module', broken)
    with pytest.raises(ModuleNotFoundError):
        entry.run_tool('lamp-train', 'training.cli')


@pytest.mark.skipif(importlib.util.find_spec('torch') is not None, reason='the robot install has no torch')
def test_in_the_robot_install_the_tools_and_the_sim_say_what_they_need():
    bin_dir = Path(sys.executable).parent
    for tool in ('lamp-train', 'lamp-export', 'lamp-sim'):         # lamp-models imports torch per command
        out = subprocess.run([str(bin_dir / tool), '--help'], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and 'needs the workstation install' in out.stderr, (tool, out.stderr)
    out = subprocess.run([str(bin_dir / 'lamp-ros'), 'deploy', '--duration', '1'], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and out.stderr.count('\n') == 1 and 'workstation install' in out.stderr
