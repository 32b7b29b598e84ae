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
