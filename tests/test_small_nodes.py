"""prompt and gripper nodes over real topics."""
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import Float32

from lamp_ros import contract as c


def test_prompt_latches_instruction_and_follows_parameter(nodes, probe):
    nodes.start('prompt', {'instruction': 'push button'})
    probe.spin_for(1.0)                                     # subscribe late: the latched value still arrives
    got = probe.record(c.INSTRUCTION)
    assert probe.wait_for(lambda: got, 20), nodes.log('prompt')
    assert got[-1][1].data == 'push button'
    request = SetParameters.Request(parameters=[Parameter(name='instruction', value=ParameterValue(
        type=ParameterType.PARAMETER_STRING, string_value='turn tap'))])
    assert probe.call(SetParameters, '/prompt/set_parameters', request).results[0].successful
    assert probe.wait_for(lambda: got[-1][1].data == 'turn tap', 5)
    request.parameters[0].value.string_value = '   '
    result = probe.call(SetParameters, '/prompt/set_parameters', request).results[0]
    assert not result.successful and 'empty instruction' in result.reason
    request.parameters[0].value.string_value = 'x' * 600
    result = probe.call(SetParameters, '/prompt/set_parameters', request).results[0]
    assert not result.successful and '600 characters (at most 512)' in result.reason
    assert got[-1][1].data == 'turn tap'


def test_gripper_thresholds_with_hysteresis_and_republishes(nodes, probe):
    nodes.start('gripper', {'min_switch_interval_s': 0.0, 'republish_rate_hz': 5.0})
    cmds = probe.record(c.GRIPPER_CMD)
    probe.spin_for(1.0)
    assert not cmds, 'no command before the first action'
    send = lambda a: probe.publish(c.SAFE_GRIPPER_ACTION, Float32(data=a))  # noqa: E731
    assert probe.wait_for(lambda: cmds and cmds[-1][1].data == 1.0, 10, lambda: send(0.9)), nodes.log('gripper')
    probe.wait_for(lambda: False, 0.5, lambda: send(0.45))   # inside the hysteresis band: stays open
    assert cmds[-1][1].data == 1.0
    assert probe.wait_for(lambda: cmds[-1][1].data == 0.0, 5, lambda: send(-1.0))
    n = len(cmds)
    probe.spin_for(1.0)
    assert len(cmds) >= n + 3 and all(m.data == 0.0 for _, m in cmds[n:]), 'held command is re-sent'
    send(float('nan'))
    probe.spin_for(0.3)
    assert 'non-finite gripper action' in nodes.log('gripper') and nodes.alive('gripper')


def test_gripper_sends_the_current_command_with_every_action(nodes, probe):
    """A reset opens the gripper behind the node's back: the next "closed" action must close it, not a re-send
    seconds later (this is what lost 2 of 10 deploy-graph button presses)."""
    nodes.start('gripper', {'min_switch_interval_s': 0.0, 'republish_rate_hz': 0.05})
    cmds = probe.record(c.GRIPPER_CMD)
    send = lambda a: probe.publish(c.SAFE_GRIPPER_ACTION, Float32(data=a))  # noqa: E731
    assert probe.wait_for(lambda: cmds, 10, lambda: send(-1.0)), nodes.log('gripper')
    for _ in range(3):
        n = len(cmds)
        send(-1.0)
        assert probe.wait_for(lambda: len(cmds) > n, 2.0), 'an unchanged command is sent again with the action'
        assert cmds[-1][1].data == 0.0
    assert nodes.log('gripper').count('gripper -> closed') == 1, 'only switches are logged'
