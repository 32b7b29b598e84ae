"""Run a policy bundle on the arm: ros2 launch lamp_ros deploy.launch.py instruction:="push button"
Arguments: instruction, robot:=sim|real, bundle (sim default: the shipped bundles/default; robot:=real needs
one), task (sim scene; default: the one the instruction names), params_file. The node list lives in
lamp_ros/graph.py."""
from lamp_ros.launch_description import generate


def generate_launch_description():
    return generate('deploy')
