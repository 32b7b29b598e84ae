"""`lamp-ros`: start the lamp_ros graph without `ros2 launch` (pip installs have no launch package).

  lamp-ros deploy   --instruction "push button" [--task T] [--bundle DIR] [--params-file F]
                    sim: runs the shipped bundle (bundles/default) in the scene the instruction names
  lamp-ros deploy   --robot real --bundle DIR --instruction "push button"
  lamp-ros finetune --instruction "push button" ...
  lamp-ros run NODE [--ros-args ...]      one node, like `ros2 run lamp_ros NODE`
  lamp-ros graph [--mode M] [--robot R]   print the nodes and parameter files a mode would start
  lamp-ros env                            shell lines that make `ros2 launch lamp_ros ...` find this install
  lamp-ros learner [--run DIR] [--init RUN] [--bind tcp://0.0.0.0:5555] [--keys DIR]   the online learner
  lamp-ros keys DIR                       CurveZMQ keys for the robot <-> learner link
  lamp-ros console | teleop | record | dashboard ...  operator tools beside a running graph (docs/operator.md;
                                          each has --help)
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path

from lamp_ros import graph
from lamp_ros.learner.cli import add_learner_parser
from lamp_ros.paths import share_dir

# operator tools: each parses its own arguments (`lamp-ros console --help`), so main() hands them the rest
OPERATOR_TOOLS = {
    'console': ('lamp_ros.console.app', 'operator console: instructions, episodes, labels, e-stop, live status'),
    'teleop': ('lamp_ros.teleop.cli', 'teleop node: keyboard (this terminal), spacemouse or gamepad'),
    'record': ('lamp_ros.record', 'save every episode to disk (--out DIR [--mcap] [--format lerobot])'),
    'to-lerobot': ('lamp_ros.to_lerobot', 'episode files (.npz) to a LeRobotDataset v3 (EPISODES --out DIR)'),
    'dashboard': ('lamp_ros.dashboard.cli', 'operator web page: cameras, plots, controls, e-stop '
                                              '(--ros-args -p port:=8080 -p host:=127.0.0.1)'),
}


def _add_graph_arguments(p: argparse.ArgumentParser, mode: str) -> None:
    for a in graph.arguments_for(mode):
        flag = '--' + a.name.replace('_', '-')
        p.add_argument(flag, dest=a.name, default=a.default, help=a.doc,
                       **({'choices': a.choices} if a.choices else {}))
    p.add_argument('--duration', type=float, default=None, metavar='S',
                   help='stop after S seconds (default: run until Ctrl-C)')
    p.add_argument('--driver-timeout', type=float, default=10.0, metavar='S',
                   help="a real arm: wait this long for its driver's topics and services before giving up with "
                        'the list of what is missing (default 10)')


def _build_graph(mode: str, **arguments: str) -> graph.Graph:
    """graph.build, with a wrong argument or a missing file reported in one line, not a traceback."""
    try:
        return graph.build(mode, **arguments)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f'lamp-ros {mode}: {e}') from None
    except ModuleNotFoundError as e:         # the robot computer's install has no simulator
        raise SystemExit(f"lamp-ros {mode}: the simulated arm needs the workstation install (./scripts/setup.sh); "
                         f"this one has no '{e.name}': use --robot real, impedance or servo with --bundle") from None


def _run_graph(mode: str, args: argparse.Namespace) -> int:
    from lamp_ros.runner import GraphRunner
    g = _build_graph(mode, **{a.name: getattr(args, a.name) for a in graph.arguments_for(mode)})
    refused = graph.refused_bundle(g)
    if refused:
        raise SystemExit(f'lamp-ros {mode}: {refused}')
    if g.robot != 'sim':
        absent = _driver_missing(g, args.driver_timeout)
        if absent:
            raise SystemExit(f'lamp-ros {mode}: the arm\'s driver is not there after {args.driver_timeout:g} s: '
                             f'{"; ".join(absent)} (ROS_DOMAIN_ID {os.environ.get("ROS_DOMAIN_ID", "0")})')
    runner = GraphRunner(g)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: runner.request_stop())
    runner.start()
    print(f'[lamp-ros] {mode} graph running ({g.robot} robot); Ctrl-C stops it (arm commanded to zero velocity)',
          flush=True)
    status = runner.wait(args.duration)
    print('[lamp-ros] stopped', flush=True)
    return status


def _driver_missing(g: graph.Graph, timeout_s: float) -> list[str]:
    """What the real arm's driver does not provide yet (lamp_ros/ros/driver_check.py), asked before any node
    of ours starts, so nothing of ours is mistaken for the driver."""
    import rclpy
    from lamp_ros.ros.driver_check import driver_interfaces, missing
    adapters = {n.spec.name: n for n in g.nodes}
    target = adapters['pose_target'].param('target_topic', '') if 'pose_target' in adapters else ''
    servo = adapters['servo_adapter'].param('servo_node', '/servo_node') if 'servo_adapter' in adapters else ''
    rclpy.init(args=[])
    node = rclpy.create_node('lamp_ros_driver_check')
    try:
        return [str(i) for i in missing(node, driver_interfaces(g.robot, g.mode, target, servo), timeout_s)]
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _print_graph(args: argparse.Namespace) -> int:
    # a real robot needs a bundle to build a graph; this only prints one, so a placeholder does
    bundle = args.bundle or ('BUNDLE_DIR' if args.robot != 'sim' else '')
    g = _build_graph(args.mode, robot=args.robot, bundle=bundle)
    print(f'{g.mode} graph, robot={g.robot}')
    for n in g.nodes:
        print(f'  {n.spec.name:<13} {n.spec.doc}')
        for f in n.params_files:
            print(f'      params: {f}')
        for k, v in n.overrides.items():
            print(f'      {k} := {v!r}')
    for note in g.notes:
        print(f'note: {note}')
    return 0


def _print_env(_: argparse.Namespace) -> int:
    prefix = Path(sys.prefix)
    share = share_dir()
    if share == prefix / 'share' / 'lamp_ros':
        print(f'export AMENT_PREFIX_PATH="{prefix}${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}"')
        # the node executables start with `#!/usr/bin/env python3`: this install's python must come first
        print(f'export PATH="{prefix / "bin"}:$PATH"')
    else:
        print(f'# lamp_ros runs from the source tree {share} (editable install): for `ros2 launch`, build it with\n'
              f'# colcon in a workspace, or `pip install .` (not -e) and run `lamp-ros env` again.')
    return 0


def _run_node(args: argparse.Namespace) -> int:
    names = [n.executable for n in graph.NODES]
    if args.node not in names:
        raise SystemExit(f'unknown node {args.node!r}; nodes: {", ".join(names)}')
    module = importlib.import_module(f'lamp_ros.nodes.{args.node}')
    return module.main([sys.argv[0]] + args.ros_args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='lamp-ros', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='command', required=True)
    for mode, what in (('deploy', 'run a policy bundle on the (simulated or real) arm'),
                       ('finetune', 'deploy graph plus online finetuning: reward, actor bridge, learner')):
        sp = sub.add_parser(mode, help=what, description=what)
        _add_graph_arguments(sp, mode)
        sp.set_defaults(func=lambda a, m=mode: _run_graph(m, a))
    sp = sub.add_parser('run', help='run one node (like `ros2 run lamp_ros NODE`)')
    sp.add_argument('node', help=', '.join(n.executable for n in graph.NODES))
    sp.add_argument('ros_args', nargs=argparse.REMAINDER, help='e.g. --ros-args -p name:=value')
    sp.set_defaults(func=_run_node)
    sp = sub.add_parser('graph', help='print the nodes and parameter files a mode would start')
    sp.add_argument('--mode', choices=graph.MODES, default='deploy')
    sp.add_argument('--robot', choices=graph.ROBOTS, default='sim')
    sp.add_argument('--bundle', default='')
    sp.set_defaults(func=_print_graph)
    sp = sub.add_parser('env', help='print shell lines that let `ros2 launch` find a pip install of lamp_ros')
    sp.set_defaults(func=_print_env)
    add_learner_parser(sub)
    for tool, (_, what) in OPERATOR_TOOLS.items():
        sub.add_parser(tool, help=what, add_help=False)      # listed here; main() runs the tool itself
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OPERATOR_TOOLS:
        return importlib.import_module(OPERATOR_TOOLS[argv[0]][0]).main(argv[1:])
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    raise SystemExit(main())
