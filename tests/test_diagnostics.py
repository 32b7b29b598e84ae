"""Every node reports its health on /diagnostics (what rqt_robot_monitor and Foxglove read): its name, a level
that follows its state, a one-line message and key values."""
from diagnostic_msgs.msg import DiagnosticStatus

from lamp_ros import contract as c
from lamp_ros.ros.diagnostics import Health, diagnostic_status


def latest(records: list) -> dict[str, DiagnosticStatus]:
    out = {}
    for _, msg in records:
        for status in msg.status:
            out[status.name] = status
    return out


def test_nodes_report_their_health_on_diagnostics(nodes, probe):
    nodes.start('sim_arm', {'control_rate_hz': 10.0, 'image_size': [32, 32]})
    nodes.start('policy', {})                                   # no bundle: refused, an error
    nodes.start('safety', {})
    records = probe.record(c.DIAGNOSTICS)
    names = {'lamp_ros/sim_arm', 'lamp_ros/policy', 'lamp_ros/safety'}
    assert probe.wait_for(lambda: names <= set(latest(records)), 30), (set(latest(records)), nodes.log('policy'))
    statuses = latest(records)
    assert statuses['lamp_ros/sim_arm'].level == DiagnosticStatus.OK
    policy = statuses['lamp_ros/policy']
    assert policy.level == DiagnosticStatus.ERROR and 'no bundle_path given' in policy.message
    assert {kv.key for kv in policy.values} >= {'model_version', 'bundle', 'explore_std'}
    safety = statuses['lamp_ros/safety']
    assert {kv.key for kv in safety.values} >= {'estop', 'control_mode', 'last_reason'}
    assert safety.hardware_id == 'lamp_ros' and safety.message


def test_a_health_becomes_a_diagnostic_status():
    status = diagnostic_status('lamp_ros/x', Health('warn', 'waiting for camera/image_raw' + 'x' * 500, {'n': 3}))
    assert status.level == DiagnosticStatus.WARN and len(status.message) == 200
    assert [(kv.key, kv.value) for kv in status.values] == [('n', '3')]
