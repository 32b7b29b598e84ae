"""`lamp-ros teleop`: run the teleop node with a device, in this terminal (keyboard) or in the background.

  lamp-ros teleop                          keyboard teleop in this terminal (press ? for the keys)
  lamp-ros teleop --device spacemouse      SpaceMouse (udev rule: docs/operator.md)
  lamp-ros teleop --device gamepad --speed 0.3
  lamp-ros teleop --params-file my.yaml --ros-args -r __ns:=/arm1

Parameters come from config/common.yaml, config/teleop.yaml, then --params-file, then the flags here.
The device moves the arm only through the safety node of a running graph (`lamp-ros deploy`), and only
while control/mode is 'auto' or 'teleop'.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lamp_ros.paths import config_file
from lamp_ros.teleop.device import DEVICES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='lamp-ros teleop', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=DEVICES, default=None, help='teleop device (default: config/teleop.yaml, keyboard)')
    p.add_argument('--speed', type=float, default=None,
                   help="full deflection = this fraction of the policy's full action, in (0, 1] (default 0.5)")
    p.add_argument('--params-file', type=Path, default=None, help='ROS 2 parameter YAML (key: teleop)')
    return p


def ros_arguments(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The node's command line: the same parameter files the graph would give it, then the overrides."""
    ros = ['--ros-args', '-r', '__node:=teleop', '--params-file', str(config_file('common.yaml')),
           '--params-file', str(config_file('teleop.yaml'))]
    if args.params_file is not None:
        if not args.params_file.is_file():
            raise SystemExit(f'--params-file {args.params_file} does not exist')
        ros += ['--params-file', str(args.params_file)]
    if args.device is not None:
        ros += ['-p', f'device:={args.device}']
    if args.speed is not None:
        if not 0.0 < args.speed <= 1.0:
            raise SystemExit(f'--speed must be in (0, 1], got {args.speed}')
        ros += ['-p', f'speed:={float(args.speed)}']
    if extra:
        ros += extra[1:] if extra[0] == '--ros-args' else extra
    return ros


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = parser().parse_args(argv[:split])
    from lamp_ros.nodes.teleop import main as node_main
    return node_main(['lamp-ros-teleop'] + ros_arguments(args, argv[split:]))


if __name__ == '__main__':
    raise SystemExit(main())
