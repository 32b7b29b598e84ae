"""CurveZMQ keys for the robot <-> learner link: with keys configured the traffic is encrypted and the
learner accepts only robots whose public key is in its authorized directory.

    lamp-ros keys DIR     ->  DIR/learner.key(_secret), DIR/robot.key(_secret), DIR/authorized/robot.key

Copy learner.key (public) and robot.key_secret to the robot; keep learner.key_secret and authorized/ on
the learner host.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq.auth


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes


def generate(directory: Path) -> dict[str, Path]:
    d = Path(directory)
    (d / 'authorized').mkdir(parents=True, exist_ok=True)
    for name in ('learner', 'robot'):
        if (d / f'{name}.key_secret').exists():
            raise FileExistsError(f'{d / name}.key_secret exists: refusing to overwrite keys')
        zmq.auth.create_certificates(str(d), name)
    shutil.copy(d / 'robot.key', d / 'authorized' / 'robot.key')
    return {'learner_secret': d / 'learner.key_secret', 'learner_public': d / 'learner.key',
            'robot_secret': d / 'robot.key_secret', 'robot_public': d / 'robot.key',
            'authorized': d / 'authorized'}


def load(path: Path) -> CurveKeys:
    """A key pair from a secret certificate file (…key_secret), or a public key alone (…key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'CurveZMQ key file {path} does not exist (create keys with `lamp-ros keys DIR`)')
    public, secret = zmq.auth.load_certificate(str(path))
    return CurveKeys(public, secret)
