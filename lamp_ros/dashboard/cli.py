"""`lamp-ros dashboard [--ros-args -p port:=8080 -p host:=127.0.0.1 ...]`: the dashboard node beside a running
graph (deploy and finetune start it themselves with dashboard:=true), with config/dashboard.yaml's values."""
from __future__ import annotations

from lamp_ros.nodes.dashboard import main as node_main
from lamp_ros.paths import config_file


def main(argv: list[str]) -> int:
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    own, ros = argv[:split], argv[split + 1:]
    if '-h' in own or '--help' in own:
        print(__doc__.strip())
        print('\nParameters (config/dashboard.yaml): host, port, token_file, workspace_min, workspace_max.')
        return 0
    if own:
        raise SystemExit(f'lamp-ros dashboard: unknown arguments {own}; set parameters with --ros-args -p NAME:=VALUE')
    return node_main(['lamp-ros-dashboard', '--ros-args', '--params-file', str(config_file('common.yaml')),
                      '--params-file', str(config_file('dashboard.yaml')), *ros])
