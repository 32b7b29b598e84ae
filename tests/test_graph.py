"""The whole deploy graph, started by the `lamp-ros` CLI against the simulated arm, over real topics."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from lamp_ros import cli, graph
from lamp_ros import contract as c
from lamp_ros.paths import default_bundle_dir
from lamp_ros.ros.convert import pose_arrays, twist_linear
from sim.robot import ArmConfig

REPO = Path(__file__).resolve().parents[1]
RATE = 10.0
PERIOD = 1.0 / RATE
HOME = ArmConfig().home_tcp


def moving(msg) -> bool:
    return np.linalg.norm(twist_linear(msg)) > 1e-9


def set_camera(probe, enabled: bool) -> None:
    request = SetParameters.Request(parameters=[Parameter(name='camera_enabled', value=ParameterValue(
        type=ParameterType.PARAMETER_BOOL, bool_value=enabled))])
    assert probe.call(SetParameters, '/sim_arm/set_parameters', request).results[0].successful


@pytest.fixture
def deploy(probe, make_bundle, tmp_path):
    log = tmp_path / 'deploy.log'
    rec = {t.name: probe.record(t) for t in (c.CAMERA_IMAGE, c.EE_POSE, c.POLICY_ACTION, c.EE_TWIST_CMD,
                                             c.GRIPPER_CMD, c.INSTRUCTION)}
    proc = subprocess.Popen([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--instruction', 'push button',
                             '--bundle', str(make_bundle(128))], stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    # DDS discovery between this test's node and the graph can lag the graph's own: wait for every topic
    ok = probe.wait_for(lambda: all(rec.values()) and any(moving(m) for _, m in rec[c.EE_TWIST_CMD.name]), 60)
    try:
        assert ok, 'the graph never moved the arm:\n' + log.read_text()
        yield proc, rec, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_deploy_graph_runs_moves_the_arm_and_stops_cleanly(deploy, probe):
    proc, rec, log = deploy
    actions, twists = rec[c.POLICY_ACTION.name], rec[c.EE_TWIST_CMD.name]
    assert rec[c.INSTRUCTION.name][-1][1].data == 'push button'
    # a random policy drives into a wall of the box and stays there: start from home, whenever discovery let us in
    assert probe.call(Trigger, c.ROBOT_RESET_SERVICE, Trigger.Request()).success
    assert probe.wait_for(lambda: np.allclose(pose_arrays(rec[c.EE_POSE.name][-1][1])[0], HOME, atol=0.01), 5)
    start = pose_arrays(rec[c.EE_POSE.name][-1][1])[0]
    n_actions, n_images = len(actions), len(rec[c.CAMERA_IMAGE.name])
    probe.spin_for(3.0)
    rate = (len(actions) - n_actions) / 3.0
    assert RATE * 0.8 <= rate <= RATE * 1.2, f'policy at {rate:.1f} Hz'
    assert len(rec[c.CAMERA_IMAGE.name]) - n_images >= 0.8 * 3.0 * RATE
    moved = np.linalg.norm(pose_arrays(rec[c.EE_POSE.name][-1][1])[0] - start)
    assert moved > 0.005, f'end effector moved only {moved * 1000:.1f} mm'
    assert rec[c.GRIPPER_CMD.name], 'no gripper command arrived'

    # e-stop from an operator: zero velocity within two control periods, until released
    t_stop = time.monotonic()
    probe.publish(c.ESTOP, Bool(data=True))
    assert probe.wait_for(lambda: any(t > t_stop and not moving(m) for t, m in twists), 2 * PERIOD + 0.05)
    probe.spin_for(1.0)
    assert not any(moving(m) for t, m in twists if t > t_stop + 2 * PERIOD)
    probe.publish(c.ESTOP, Bool(data=False))
    assert probe.wait_for(lambda: moving(twists[-1][1]), 3.0), 'no motion after e-stop release'

    # camera dropout (simulated at the sim arm): zero velocity within the stale timeout + two periods
    set_camera(probe, False)
    probe.spin_for(0.3)
    t_last_image = rec[c.CAMERA_IMAGE.name][-1][0]
    assert probe.wait_for(lambda: any(t > t_last_image and not moving(m) for t, m in twists), 1.0)
    first_zero = next(t for t, m in twists if t > t_last_image and not moving(m))
    assert first_zero - t_last_image <= 1.5 * PERIOD + 2 * PERIOD
    probe.spin_for(0.5)
    assert not moving(twists[-1][1])
    set_camera(probe, True)
    assert probe.wait_for(lambda: moving(twists[-1][1]), 3.0), 'no motion after the camera came back'

    # Ctrl-C: ordered shutdown, last command to the arm is zero velocity
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, log.read_text()
    probe.spin_for(0.3)
    assert not moving(twists[-1][1]), 'arm not left at zero velocity'
    text = log.read_text()
    assert 'commanded zero velocity' in text and '[lamp-ros] stopped' in text


def test_the_finetune_graph_records_the_cameras_its_bundle_sees(make_bundle):
    wrist = graph.build('finetune', robot='sim', bundle=str(make_bundle(32, cameras=('front', 'wrist'))))
    for node in ('actor', 'learner'):
        assert next(n for n in wrist.nodes if n.spec.name == node).overrides['cameras'] == ['front', 'wrist']


def test_finetune_graph_reward_and_learner_arguments():
    sim = graph.build('finetune', robot='sim', bundle='/b', init='/runs/pt')
    assert [n.spec.name for n in sim.nodes] == ['sim_arm', 'prompt', 'episode', 'policy', 'actor', 'learner',
                                                'safety', 'gripper', 'dashboard']
    params = {n.spec.name: n.overrides for n in sim.nodes}
    assert params['sim_arm'] == {'task': 'push_button', 'publish_task_reward': True}
    assert params['learner'] == {'init_run': '/runs/pt', 'reward_source': 'task', 'cameras': ['front']}
    assert params['actor'] == {'reward_source': 'task', 'cameras': ['front']}, 'announced in the hello; the ' \
        'learner refuses others'
    assert params['policy']['require_episode'] is True
    assert params['policy']['explore_std'] == 0.2, 'finetuning explores (deploying does not)'
    learner = next(n for n in sim.nodes if n.spec.name == 'learner')
    assert learner.spec.stop_timeout_s >= 30, 'the learner checkpoints before it stops: more than launch\'s 5 s'
    deploy = graph.build('deploy', robot='sim', bundle='/b')
    assert 'explore_std' not in next(n for n in deploy.nodes if n.spec.name == 'policy').overrides
    real = graph.build('finetune', robot='real', bundle='/b', learner='tcp://gpu:5555')
    assert [n.spec.name for n in real.nodes] == ['camera', 'prompt', 'episode', 'policy', 'reward', 'actor',
                                                 'safety', 'gripper']
    params = {n.spec.name: n.overrides for n in real.nodes}
    assert params['reward'] == {'model': 'r3m-onnx'}
    assert params['actor'] == {'learner': 'tcp://gpu:5555', 'reward_source': 'r3m', 'cameras': ['front']}
    with pytest.raises(ValueError, match='simulation only'):
        graph.build('finetune', robot='real', reward='task')
    with pytest.raises(ValueError, match='learner'):
        graph.build('finetune', learner='gpu:5555')


def test_graph_description_is_shared_by_launch_and_cli():
    sim = graph.build('deploy', instruction='push button', robot='sim', bundle='/b')
    real = graph.build('deploy', instruction='push button', robot='real', bundle='/b')
    assert [n.spec.name for n in sim.nodes] == ['sim_arm', 'prompt', 'episode', 'policy', 'safety', 'gripper',
                                                'dashboard'], 'the dashboard is on in sim by default'
    assert [n.spec.name for n in real.nodes] == ['camera', 'prompt', 'episode', 'policy', 'safety', 'gripper'], \
        'and off on a real robot unless asked for'
    assert 'dashboard' in [n.spec.name for n in graph.build('deploy', robot='real', bundle='/b', dashboard='true').nodes]
    assert 'dashboard' not in [n.spec.name for n in graph.build('deploy', bundle='/b', dashboard='false').nodes]
    with pytest.raises(ValueError, match='dashboard must be one of'):
        graph.build('deploy', bundle='/b', dashboard='maybe')
    finetune = graph.build('finetune', robot='sim', bundle='/b')
    episode = next(n for n in finetune.nodes if n.spec.name == 'episode')
    assert episode.overrides == {'auto_start': True, 'auto_reset': True}
    prompt = next(n for n in sim.nodes if n.spec.name == 'prompt')
    assert prompt.overrides == {'instruction': 'push button'}
    policy = next(n for n in sim.nodes if n.spec.name == 'policy')
    assert policy.overrides == {'bundle_path': '/b'} and policy.params_files[0].name == 'common.yaml'
    with pytest.raises(ValueError, match='robot'):
        graph.build('deploy', robot='moon')
    with pytest.raises(FileNotFoundError, match='params_file'):
        graph.build('deploy', params_file='/nonexistent.yaml')


def test_sim_runs_the_shipped_bundle_in_the_scene_the_instruction_names():
    g = graph.build('deploy', instruction='lift the mug')
    params = {n.spec.name: n.overrides for n in g.nodes}
    assert params['policy'] == {'bundle_path': str(default_bundle_dir())}
    assert params['sim_arm'] == {'task': 'pick_up_cup'} and not g.notes
    g = graph.build('deploy', instruction='press the button', task='turn_tap', bundle='/b')
    assert next(n for n in g.nodes if n.spec.name == 'sim_arm').overrides == {'task': 'turn_tap'}
    g = graph.build('deploy', instruction='wave hello', bundle='/b')
    assert next(n for n in g.nodes if n.spec.name == 'sim_arm').overrides == {'task': 'push_button'}
    assert g.notes == ("instruction 'wave hello' names no known task; running it as given in the push_button scene",)
    with pytest.raises(ValueError, match='choose one of: push_button, turn_tap, .*pretrain'):
        graph.build('deploy', instruction='push button', task='fold_laundry', bundle='/b')
    g = graph.build('deploy', instruction='push button', task='pretrain')       # a task the bundle never saw
    assert g.notes == ('the bundle was trained for push_button, pick_up_cup, take_lid_off_saucepan, '
                       'close_microwave, turn_tap, not pretrain; running it anyway',)


def test_a_real_arm_never_runs_the_default_bundle_implicitly():
    for mode in graph.MODES:
        with pytest.raises(ValueError, match='real robot needs a bundle given'):
            graph.build(mode, instruction='push button', robot='real')
    with pytest.raises(ValueError, match='simulated scene'):
        graph.build('deploy', robot='real', bundle='/b', task='turn_tap')
    real = graph.build('deploy', robot='real', bundle='/b')
    assert all('task' not in n.overrides for n in real.nodes)


def test_a_real_arm_moves_only_inside_an_episode():
    policy = lambda g: next(n for n in g.nodes if n.spec.name == 'policy')  # noqa: E731
    assert policy(graph.build('deploy', robot='real', bundle='/b')).param('require_episode') is True
    assert policy(graph.build('deploy', instruction='push button')).param('require_episode', False) is False


def test_node_parameters_resolve_as_the_node_gets_them(tmp_path):
    site = tmp_path / 'site.yaml'
    site.write_text('/**:\n  ros__parameters:\n    control_rate_hz: 20.0\npolicy:\n  ros__parameters:\n'
                    '    threads: 3\n')
    g = graph.build('deploy', instruction='push button', params_file=str(site), bundle='/my/bundle')
    policy = next(n for n in g.nodes if n.spec.name == 'policy')
    assert policy.param('control_rate_hz') == 20.0 and policy.param('threads') == 3      # site file wins
    assert policy.param('bundle_path') == '/my/bundle' and policy.param('resize_images') is True
    assert policy.param('not_declared', 'dflt') == 'dflt'


def test_a_bundle_the_policy_would_refuse_fails_deploy_before_any_node_starts(make_bundle):
    bundle = make_bundle(64, 5.0)                                           # made for 5 Hz control
    for robot in ('sim', 'real'):
        out = subprocess.run([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--robot', robot, '--bundle',
                              str(bundle), '--instruction', 'push button', '--duration', '30'],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and out.stderr.count('\n') == 1, out.stderr
        assert '5.0 Hz control but control_rate_hz is 10.0' in out.stderr and 'started' not in out.stdout
    assert graph.refused_bundle(graph.build('deploy', bundle=str(make_bundle(64)))) == ''


def test_missing_default_text_encoder_names_the_command_that_builds_it(tmp_path, monkeypatch):
    monkeypatch.setattr(graph, 'default_bundle_dir', lambda: tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(['deploy', '--instruction', 'push button'])
    message = str(e.value.code)
    assert f'lamp-export text-encoder --bundle {tmp_path}' in message and '\n' not in message


def test_cli_refuses_wrong_arguments_in_one_line():
    for args, words in ((['--robot', 'real'], '--bundle DIR'), (['--task', 'fold_laundry'], 'choose one of')):
        out = subprocess.run([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--instruction', 'push button', *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and words in out.stderr and out.stderr.count('\n') == 1, out.stderr
        assert 'Traceback' not in out.stderr and not out.stdout


def test_an_arm_behind_an_impedance_controller_gets_the_pose_target_adapter():
    g = graph.build('deploy', robot='impedance', bundle='/b', params_file=str(REPO / 'config/robots/crisp.yaml'))
    assert [n.spec.name for n in g.nodes] == ['camera', 'pose_target', 'prompt', 'episode', 'policy', 'safety',
                                              'gripper']
    policy = next(n for n in g.nodes if n.spec.name == 'policy')
    assert policy.param('require_episode') is True, 'a real arm moves only when asked'
    pose_target = next(n for n in g.nodes if n.spec.name == 'pose_target')
    assert pose_target.param('target_topic') == '/target_pose'
    assert pose_target.param('workspace_min') == next(n for n in g.nodes if n.spec.name == 'safety').param(
        'workspace_min'), 'one box for the safety layer and the target'
    with pytest.raises(ValueError, match='a real robot needs a bundle'):
        graph.build('deploy', robot='impedance')


def test_an_arm_behind_moveit_servo_gets_the_servo_adapter():
    g = graph.build('finetune', robot='servo', bundle='/b', params_file=str(REPO / 'config/robots/ur_servo.yaml'))
    names = [n.spec.name for n in g.nodes]
    assert 'servo_adapter' in names and 'pose_target' not in names and 'sim_arm' not in names
    nodes = {n.spec.name: n for n in g.nodes}
    assert nodes['policy'].param('require_episode') is True, 'a real arm moves only when asked'
    adapter = nodes['servo_adapter']
    assert adapter.param('servo_node') == '/servo_node' and adapter.param('tool_frame') == 'tool0'
    assert adapter.param('workspace_max') == nodes['safety'].param('workspace_max'), 'one box for both'
    assert adapter.param('base_frame_id') == nodes['safety'].param('base_frame_id') == 'base_link'


def test_deploy_takes_no_finetune_arguments():
    finetune_only = {'reward', 'learner', 'init'}
    assert not finetune_only & {a.name for a in graph.arguments_for('deploy')}
    assert finetune_only <= {a.name for a in graph.arguments_for('finetune')}
    out = subprocess.run([sys.executable, '-m', 'lamp_ros.cli', 'deploy', '--help'], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and '--instruction' in out.stdout and '--reward' not in out.stdout


def test_the_robot_path_imports_no_torch():
    code = ('import sys; from lamp_ros import cli, graph, runner; graph.build("deploy", robot="real", bundle="/b"); '
            'graph.build("deploy", instruction="push button"); assert "torch" not in sys.modules, "torch imported"')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_a_config_file_of_comments_only_is_not_passed_to_its_node() -> None:
    """config/safety.yaml holds no values (SafetyConfig's defaults are the safe ones): not every ROS
    distribution's parameter parser takes an empty document, so the node gets common.yaml only."""
    from lamp_ros import graph
    safety = next(n for n in graph.build('deploy').nodes if n.spec.name == 'safety')
    assert [f.name for f in safety.params_files] == ['common.yaml']
