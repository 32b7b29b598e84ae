"""Test isolation for real ROS 2 traffic: a DDS domain of our own, discovery limited to this machine,
offscreen MuJoCo. Set before anything imports rclpy (child node processes inherit it)."""
import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

# pytest-xdist's workers (gw0, gw1, ...) are children of one controller: each takes the domain after its
# neighbour's, so that the workers of one run never share one.
_worker = os.environ.get('PYTEST_XDIST_WORKER', '')
_domain_seed = os.getppid() + int(_worker[2:]) if _worker.startswith('gw') else os.getpid()
os.environ['ROS_DOMAIN_ID'] = str(1 + _domain_seed % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')
# The safety node saves its latched e-stop under $XDG_STATE_HOME: never the developer's own, and
# (state_home below) a fresh one per test, so that one test's e-stop does not hold the next test's arm.
os.environ['XDG_STATE_HOME'] = tempfile.mkdtemp(prefix='lamp_ros_test_state.')
atexit.register(shutil.rmtree, os.environ['XDG_STATE_HOME'], ignore_errors=True)

import pytest  # noqa: E402

# The robot computer's install (scripts/setup.sh --robot) has no torch and no simulator: there only the tests of
# the robot-side nodes and their ROS-free cores are collected (`.venv-robot/bin/python -m pytest -q`).
ROBOT_SIDE_TESTS = ('test_actor_node.py', 'test_arbiter.py', 'test_bad_parameters.py', 'test_calibration.py',
                    'test_camera_node.py', 'test_core_units.py', 'test_exploration.py', 'test_frame_source.py',
                    'test_gripper_goals.py', 'test_link.py', 'test_pose_target.py', 'test_pose_target_node.py',
                    'test_robot_install.py', 'test_safety_filter.py', 'test_safety_invariants.py',
                    'test_safety_node.py', 'test_servo_session.py', 'test_small_nodes.py', 'test_transitions.py')
if importlib.util.find_spec('torch') is None:
    collect_ignore_glob = [p.name for p in Path(__file__).parent.glob('test_*.py') if p.name not in ROBOT_SIDE_TESTS]


ROS_FIXTURES = {'probe', 'nodes'}


@pytest.hookimpl(tryfirst=True)           # before xdist's own, which turns the markers into node-id groups
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (README: -n 2 --dist loadgroup) every test that starts ROS nodes runs on one worker, one
    at a time, as in a serial run: their rates and deadlines are real time, and two graphs at once on a 2-core
    host starve both. The other worker takes the training, simulator and model tests."""
    for item in items:
        if ROS_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.xdist_group('ros'))


def pytest_runtest_setup(item):
    """On an xdist worker under --dist loadgroup, a grouped test whose node id lacks its group was scheduled
    without it (pytest 9.2 with pytest-xdist 3.8 lost the groups silently, and ROS tests ran two at a time)."""
    config = item.config
    if hasattr(config, 'workerinput') and config.getvalue('loadgroup') and item.get_closest_marker('xdist_group') \
            and '@' not in item.nodeid:
        pytest.fail('pytest-xdist did not apply this test\'s xdist_group: install the pytest and pytest-xdist '
                    'versions requirements-test.txt pins', pytrace=False)


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path / 'state'))
    return tmp_path / 'state'


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
def small_vocab(tmp_path_factory):
    from tests.tiny import write_small_vocab
    return write_small_vocab(tmp_path_factory.mktemp('vocab') / 'vocab.txt')


@pytest.fixture(scope='session')
def r3m_checkpoint(tmp_path_factory, small_vocab) -> Path:
    """A tiny random R3M (ResNet-18, 64-wide one-layer DistilBERT, 32-wide head) in the official layout."""
    from models.r3m.checkpoint import save_checkpoint
    from models.r3m.model import R3MNet
    from models.text_encoder import SentenceEncoder
    vocab_size = len(small_vocab.read_text().splitlines())
    lang = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=vocab_size, seed=0)
    return save_checkpoint(R3MNet.random(size=18, hidden_dim=32, lang_enc=lang, seed=0),
                           tmp_path_factory.mktemp('r3m') / 'tiny', small_vocab)


@pytest.fixture(scope='session')
def make_bundle(tmp_path_factory, small_vocab):
    """A tiny random-weight policy bundle from the real exporter: make_bundle(image_size, control_rate_hz,
    cameras)."""
    from tests.tiny import export_tiny
    made = {}

    def make(image_size: int = 64, control_rate_hz: float = 10.0, cameras: tuple[str, ...] = ('front',)):
        key = (image_size, control_rate_hz, cameras)
        if key not in made:
            name = f'bundle_{image_size}_{control_rate_hz:g}hz_{"_".join(cameras)}'
            out = tmp_path_factory.mktemp('bundle') / name
            export_tiny(out, small_vocab, image_size=image_size, model_version='tiny-test',
                        control_rate_hz=control_rate_hz, cameras=cameras)
            made[key] = out
        return made[key]

    return make


@pytest.fixture
def one_torch_thread():
    """Tiny networks on a shared 2-core machine: a second intra-op thread only adds contention (10x slower)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
