"""The package arrows run one way (docs/architecture.md): sim knows nothing of training; models knows nothing of
sim or training; in lamp_ros only the learner imports training; the robot-path nodes never import torch.

The import rules are checked on the source with `ast`, every import statement at any depth (a function-level
import is still an arrow), so no module has to be importable here to be checked.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEARNER = ('lamp_ros/learner/', 'lamp_ros/nodes/learner.py')       # the only lamp_ros code that may train
ROBOT_NODES = ('actor', 'camera', 'dashboard', 'episode', 'gripper', 'policy', 'pose_target', 'prompt', 'reward',
               'safety', 'scripted_operator', 'servo_adapter', 'sim_arm', 'teleop')


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every absolute import in the file (relative imports stay inside the package)."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split('.')[0])
    return packages


def violations(package: str, forbidden: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in sorted((REPO / package).rglob('*.py')):
        name = path.relative_to(REPO).as_posix()
        if name.startswith(allowed):
            continue
        found += [f'{name} imports {p}' for p in sorted(imported_packages(path) & forbidden)]
    return found


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / 'm.py'
    source.write_text('import os\n\ndef f():\n    from training.export import x\n    import sim.experts\n'
                      '    from . import sibling\n')
    assert imported_packages(source) == {'os', 'training', 'sim'}


def test_sim_does_not_import_training() -> None:
    assert violations('sim', {'training'}) == []


def test_models_import_neither_sim_nor_training() -> None:
    assert violations('models', {'sim', 'training'}) == []


def test_only_the_learner_in_lamp_ros_imports_training() -> None:
    assert list((REPO / 'lamp_ros/learner').glob('*.py')) and (REPO / LEARNER[1]).is_file()   # the allowance exists
    assert violations('lamp_ros', {'training'}, allowed=LEARNER) == []


def test_robot_path_nodes_import_no_torch() -> None:
    """In a fresh interpreter (pytest may have torch loaded): every node module but the learner's."""
    nodes = sorted(p.stem for p in (REPO / 'lamp_ros/nodes').glob('*.py') if p.stem not in ('__init__', 'learner'))
    assert tuple(nodes) == ROBOT_NODES, 'a node was added or removed: decide whether it is on the robot path'
    code = ('import importlib, sys\n'
            f'for name in {list(ROBOT_NODES)!r}:\n'
            "    importlib.import_module('lamp_ros.nodes.' + name)\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'training') if m in sys.modules)\n"
            "assert not heavy, f'the robot-path nodes imported {heavy}'\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
