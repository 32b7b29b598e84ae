"""`lamp-ros deploy --robot real` starts nothing until the arm's driver is there: with a FAKE driver (the probe,
speaking the driver's topics and service) missing pieces are named in one line; complete, the graph starts."""
import subprocess
import sys

from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.ros.driver_check import driver_interfaces
from lamp_ros.ros.interfaces import profile, publisher_profile


def deploy(bundle, *extra, mode='deploy', timeout=120, driver_timeout=12):
    """driver_timeout: a present driver is found as soon as discovery sees it; a missing one costs all of it."""
    return subprocess.run([sys.executable, '-m', 'lamp_ros.cli', mode, '--robot', 'real', '--bundle', str(bundle),
                           '--driver-timeout', str(driver_timeout), '--duration', '3', *extra], capture_output=True,
                          text=True, timeout=timeout)


def test_a_missing_driver_is_named_and_a_present_one_lets_the_graph_start(probe, make_bundle):
    bundle = make_bundle(64)
    node = probe.node
    node.create_publisher(PoseStamped, c.EE_POSE.name, publisher_profile(c.EE_POSE))      # half a driver
    node.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, lambda m: None, profile(c.EE_TWIST_CMD))
    out = deploy(bundle, driver_timeout=5)               # what discovery found of the probe's half is there by then
    assert out.returncode != 0 and out.stderr.count('\n') == 1, out.stderr
    assert 'no publisher of robot/gripper_state' in out.stderr and 'no subscriber on robot/gripper_cmd' in out.stderr
    assert 'robot/ee_pose' not in out.stderr and 'no service' not in out.stderr, 'deploy needs no reset service'

    node.create_publisher(JointState, c.GRIPPER_STATE.name, publisher_profile(c.GRIPPER_STATE))   # the rest
    node.create_subscription(Float64, c.GRIPPER_CMD.name, lambda m: None, profile(c.GRIPPER_CMD))
    node.create_service(Trigger, c.ROBOT_RESET_SERVICE, lambda req, res: res)
    out = deploy(bundle)
    assert out.returncode == 0 and 'graph running (real robot)' in out.stdout, out.stdout + out.stderr


def test_what_each_arm_kind_must_provide():
    names = lambda robot, mode, target='': {(i.kind, i.name) for i in driver_interfaces(robot, mode, target)}  # noqa
    assert ('subscriber', c.EE_TWIST_CMD.name) in names('real', 'deploy')
    impedance = names('impedance', 'finetune', '/target_pose')
    assert ('subscriber', '/target_pose') in impedance and ('subscriber', c.EE_TWIST_CMD.name) not in impedance
    assert ('service', c.ROBOT_RESET_SERVICE) in impedance, 'finetuning resets the arm between episodes'
    servo = {(i.kind, i.name) for i in driver_interfaces('servo', 'finetune', servo_node='/servo_node')}
    assert {('subscriber', '/servo_node/delta_twist_cmds'), ('service', '/servo_node/switch_command_type'),
            ('service', '/servo_node/pause_servo'), ('publisher', '/servo_node/status')} <= servo
    assert not {('publisher', c.EE_POSE.name), ('service', c.ROBOT_RESET_SERVICE)} & servo, \
        'the servo adapter itself gives the pose (TF) and robot/reset'
