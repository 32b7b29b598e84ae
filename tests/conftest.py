"""Test isolation for real ROS 2 traffic: a DDS domain of our own, discovery limited to this machine,
offscreen MuJoCo. Set before anything imports rclpy (child node processes inherit it)."""
import os

os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def rclpy_session():
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def probe(rclpy_session):
    from tests.rosprobe import Probe
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def nodes(tmp_path):
    """Start lamp_ros node processes; all are stopped (SIGINT, then kill) at the end of the test."""
    from tests.rosprobe import NodeProcesses
    procs = NodeProcesses(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture(scope='session')
def make_bundle(tmp_path_factory):
    """Export a tiny random-weight policy bundle (real exporter, tiny sizes): make_bundle(image_size, rate)."""
    from models.export import export_bundle
    from models.policy_net import PolicyNet, PolicyNetConfig
    from models.text_encoder import SentenceEncoder, default_vocab_path
    import torch

    vocab = tmp_path_factory.mktemp('vocab') / 'vocab.txt'
    vocab.write_text('\n'.join(default_vocab_path().read_text(encoding='utf-8').splitlines()[:6000]) + '\n')
    made = {}

    def make(image_size: int = 64, control_rate_hz: float = 10.0):
        key = (image_size, control_rate_hz)
        if key not in made:
            torch.manual_seed(0)
            keys = ('ee_x', 'ee_y', 'ee_z', 'gripper_opening')
            policy = PolicyNet(PolicyNetConfig(image_size=image_size, state_dim=len(keys), embedding_dim=32,
                                               channels=(8, 16), hidden=32))
            text = SentenceEncoder.random(n_layers=1, dim=32, n_heads=2, hidden_dim=64, vocab_size=6000, seed=0)
            out = tmp_path_factory.mktemp('bundle') / f'bundle_{image_size}_{control_rate_hz:g}hz'
            export_bundle(policy, text, vocab, out, model_version='tiny-test', state_keys=keys,
                          image_size=image_size, max_text_length=16, control_rate_hz=control_rate_hz)
            made[key] = out
        return made[key]

    return make
