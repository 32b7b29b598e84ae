"""Console entry points of the workstation's tools (lamp-train, lamp-export, lamp-sim, lamp-models). On the robot
computer's install (scripts/setup.sh --robot: no torch, no simulator) they say so in one line instead of a
traceback."""
from __future__ import annotations

import importlib
import sys

WORKSTATION_ONLY = ('torch', 'torchvision', 'open_clip', 'transformers', 'safetensors', 'onnx', 'mujoco',
                    'gymnasium', 'tensorboard', 'matplotlib', 'tqdm')


def run_tool(tool: str, module: str) -> int:
    """`module`.main(), or exit 2 with one line when the install lacks what the tool needs."""
    try:
        main = importlib.import_module(module).main
    except ModuleNotFoundError as e:
        if (e.name or '').split('.')[0] not in WORKSTATION_ONLY:
            raise
        print(f"{tool}: needs the workstation install (./scripts/setup.sh); this one has no '{e.name}' "
              '(the robot computer\'s install, scripts/setup.sh --robot, runs lamp-ros only)', file=sys.stderr)
        return 2
    return main()


def lamp_train() -> int:
    return run_tool('lamp-train', 'training.cli')


def lamp_export() -> int:
    return run_tool('lamp-export', 'training.export')


def lamp_sim() -> int:
    return run_tool('lamp-sim', 'sim.cli')


def lamp_models() -> int:
    return run_tool('lamp-models', 'models.cli')
