"""Static check: no undefined names, unused imports or unused locals (cheap bugs, e.g. a declared
parameter never used)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pyflakes_clean():
    dirs = [str(REPO / d) for d in ('lamp_ros', 'sim', 'models', 'training', 'experiments', 'bench', 'tests', 'launch',
                                     'exec')]
    out = subprocess.run([sys.executable, '-m', 'pyflakes', *dirs], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
