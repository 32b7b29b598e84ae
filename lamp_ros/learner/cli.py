"""`lamp-ros learner` (the online learner as a plain process, e.g. on a GPU host) and `lamp-ros keys`."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from lamp_ros.contract import CAMERA_TOPICS
from lamp_ros.paths import data_dir


def add_learner_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('learner', help='run the online learner (robots connect to it over pyzmq)',
                       description='Receive transitions from robots (lamp-ros finetune ... --learner tcp://HOST:PORT), '
                                   'store them on disk, train the agent and push new policy bundles. The run '
                                   'directory is resumed if it exists (after a crash or kill -9 too).')
    p.add_argument('--run', type=Path, default=data_dir() / 'learner' / 'run', metavar='DIR',
                   help='learner run directory (default: %(default)s)')
    p.add_argument('--init', type=Path, default=None, metavar='RUN',
                   help='a lamp-train run (pretrain or finetune) to start from; default: from scratch')
    p.add_argument('--preset', default='cpu', choices=('debug', 'cpu', 'paper'),
                   help='training preset when starting from scratch (default: cpu)')
    p.add_argument('--cameras', nargs='+', default=['front'], choices=tuple(CAMERA_TOPICS), metavar='CAMERA',
                   help="from scratch: the images the agent sees, front first (default front; an --init run's "
                        'agent decides otherwise); robots must send the same')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', dest='settings',
                   help="a new run's config override, e.g. --set finetune.bc_decay_steps=40000 (the keys of "
                        'RUN/config.yaml; an existing run keeps its own)')
    p.add_argument('--bind', default='tcp://127.0.0.1:5555',
                   help='endpoint robots connect to; tcp://0.0.0.0:5555 accepts other hosts (default: %(default)s)')
    p.add_argument('--keys', type=Path, default=None, metavar='DIR',
                   help='CurveZMQ key directory from `lamp-ros keys DIR`: encrypt, and refuse unknown robots')
    p.add_argument('--demos', type=Path, default=None, metavar='DIR',
                   help='recorded episodes (lamp-ros record) to add to the replay, each once per run')
    p.add_argument('--bundle-every', type=int, default=200, help='agent updates between bundles (default 200)')
    p.add_argument('--checkpoint-every', type=int, default=500, help='agent updates between checkpoints')
    p.add_argument('--updates-per-transition', type=float, default=1.0, help='update-to-data ratio cap (default 1)')
    p.add_argument('--reward', default='', choices=('', 'task', 'r3m', 'clip', 'classifier', 'success'),
                   metavar='SOURCE',
                   help="the robots' reward source (task, r3m, clip, classifier; success: 1 when the episode "
                        "succeeds, from the robot's success label), recorded in the run; a run made with another "
                        "is refused (default: as recorded, or the first robot's hello)")
    p.add_argument('--max-message-bytes', type=int, default=None, metavar='N',
                   help='refuse robot messages over N bytes (default: LearnerOptions, 4 MiB)')
    p.add_argument('--device', default='cpu', help='torch device, e.g. cuda (default cpu)')
    p.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    p.add_argument('--duration', type=float, default=None, metavar='S', help='stop after S seconds')
    p.set_defaults(func=run_learner)

    k = sub.add_parser('keys', help='create CurveZMQ keys for the robot <-> learner link',
                       description='Write learner.key(_secret), robot.key(_secret) and authorized/robot.key into DIR. '
                                   'Copy robot.key_secret and learner.key to the robot (actor node parameters '
                                   'robot_key, learner_public_key); start the learner with --keys DIR.')
    k.add_argument('dir', type=Path, help='directory to create the keys in (existing keys are never overwritten)')
    k.set_defaults(func=make_keys)


def run_learner(args: argparse.Namespace) -> int:
    """0 after a stop; 2 if it cannot start as asked; 1 if the link thread died (a supervisor restarts it)."""
    from lamp_ros.learner.learner import Learner, LearnerError, LearnerOptions
    from lamp_ros.link.learner_server import LinkFailed
    logging.basicConfig(level=logging.INFO, format='[learner] %(message)s')
    size = {} if args.max_message_bytes is None else {'max_message_bytes': args.max_message_bytes}
    options = LearnerOptions(run_dir=args.run, init_run=args.init, preset=args.preset, cameras=tuple(args.cameras),
                             settings=tuple(args.settings),
                             bind=args.bind,
                             keys_dir=args.keys, bundle_every=args.bundle_every,
                             checkpoint_every=args.checkpoint_every,
                             updates_per_transition=args.updates_per_transition, device=args.device,
                             threads=args.threads, demos_dir=args.demos, reward_source=args.reward, **size)
    try:
        learner = Learner(options)
    except (LearnerError, FileNotFoundError) as e:
        print(f'lamp-ros learner: {e}', file=sys.stderr)
        return 2
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    print(f'[learner] run {args.run.resolve()}; robots connect to {args.bind}; Ctrl-C checkpoints and stops',
          flush=True)
    try:
        learner.run(stop)
    except LinkFailed as e:
        print(f'lamp-ros learner: {e}; exiting to be restarted', file=sys.stderr, flush=True)
        return 1
    finally:
        learner.checkpoint()
        learner.close()
    print(f'[learner] stopped: {learner.status()}', flush=True)
    return 0


def make_keys(args: argparse.Namespace) -> int:
    from lamp_ros.link import keys
    try:
        made = keys.generate(args.dir)
    except FileExistsError as e:
        print(f'lamp-ros keys: {e}', file=sys.stderr)
        return 1
    for what, path in made.items():
        print(f'{what:<15} {path}')
    print('robot: actor parameters robot_key:=<robot.key_secret> learner_public_key:=<learner.key>; '
          f'learner: lamp-ros learner --keys {args.dir}')
    return 0
