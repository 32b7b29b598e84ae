"""lamp_ros: ROS 2 deployment, online finetuning and teleop for LAMP language-conditioned policies."""
__version__ = '0.1.0'
