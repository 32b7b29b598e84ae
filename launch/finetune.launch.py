"""Finetune the policy on the arm: ros2 launch lamp_ros finetune.launch.py instruction:="push button"
Arguments: instruction, robot:=sim|real, bundle (robot:=real needs one), task, params_file, reward:=auto|task|r3m|clip,
learner:=local|tcp://HOST:PORT, init:=LAMP_TRAIN_RUN. The node list lives in lamp_ros/graph.py (docs/finetuning.md)."""
from lamp_ros.launch_description import generate


def generate_launch_description():
    return generate('finetune')
