"""A node started with a parameter value it cannot run with exits with code 2 and one line naming the parameter,
never a traceback (ros2 run / ros2 launch show that line to the user)."""
import pytest

CASES = [
    ('policy', {'trigger': 'bogus'}, "trigger must be 'image' or 'timer', got 'bogus'"),
    ('policy', {'explore_std': 5.0}, 'explore_std must be in [0, 1]'),
    ('actor', {'cameras': ['wrist']}, 'cameras must be distinct names'),
    ('gripper', {'interface': 'bogus'}, "interface must be 'topic' or one of"),
    ('gripper', {'interface': 'gripper_command'}, 'needs the control_msgs package'),   # no wheel: not installed here
    ('servo_adapter', {'home_position': [0.9, 0.0, 0.2]}, 'home (0.9, 0.0, 0.2) must lie in the workspace box'),
    ('servo_adapter', {'servo_node': '/servo_node'}, 'robot:=servo needs moveit_msgs and tf2_ros'),                  # no wheels here either

    ('policy', {'explore_gripper': 'lots'}, "'explore_gripper' to 'lots'"),   # rclpy's own: a wrong type
]


@pytest.mark.parametrize('node, params, reason', CASES, ids=[f'{n}-{next(iter(p))}' for n, p, _ in CASES])
def test_a_bad_parameter_is_one_line_and_exit_code_2(nodes, node, params, reason):
    process = nodes.start(node, params)
    assert process.wait(timeout=60) == 2, nodes.log(node)
    log = nodes.log(node)
    lines = [line for line in log.splitlines() if 'bad parameter' in line]
    assert len(lines) == 1 and reason in lines[0] and 'Traceback' not in log, log
