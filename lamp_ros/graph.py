"""The node graph, described once. Both the ROS 2 launch files (launch/*.launch.py via
lamp_ros.launch_description) and the `lamp-ros` CLI (lamp_ros.runner) start exactly this.

Parameters come, in order of precedence (later wins): config/common.yaml (values every node shares,
such as the control rate), config/<node>.yaml, the user's params_file, then launch arguments.

Without a bundle, the simulated arm runs the bundle shipped in bundles/default (lamp_ros.paths); a real
arm never runs it implicitly. In sim, the scene is the task given, else the task the instruction names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lamp_ros.contract import ACTION_SCALE_M, DEFAULT_CONTROL_RATE_HZ, FINETUNE_EXPLORE_STD
from lamp_ros.paths import config_file, default_bundle_dir

MODES = ('deploy', 'finetune')
ROBOTS = ('sim', 'real', 'impedance', 'servo')
REAL_ROBOTS = ('real', 'impedance', 'servo')   # real: the driver speaks robot/*; impedance: a pose-target controller;
                                               # servo: MoveIt Servo takes the twist
REWARDS = ('auto', 'task', 'r3m', 'clip', 'classifier', 'success')
REWARD_NODE_MODEL = {'r3m': 'r3m-onnx', 'clip': 'clip', 'classifier': 'classifier'}      # reward argument -> the reward node's `model`
COMMON_PARAMS = 'common.yaml'
DEFAULT_SIM_TASK = 'push_button'


@dataclass(frozen=True)
class NodeSpec:
    name: str                       # ROS node name; its defaults live in config/<name>.yaml
    executable: str                 # lib/lamp_ros/<executable> == module lamp_ros.nodes.<executable>
    robots: tuple[str, ...]         # robot kinds it runs for
    stop_rank: int                  # shutdown order: motion sources first, the arm driver last
    doc: str
    remappings: tuple[tuple[str, str], ...] = ()
    modes: tuple[str, ...] = MODES
    mode_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()   # (mode, ((param, value), ...))
    robot_params: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # (robot, ((param, value), ...))
    stop_timeout_s: float = 5.0     # SIGINT to kill (launch's sigterm_timeout too): the learner checkpoints first

    def params_for(self, mode: str, robot: str = 'sim') -> dict[str, Any]:
        return {**dict(next((p for m, p in self.mode_params if m == mode), ())),
                **dict(next((p for r, p in self.robot_params if r == robot), ()))}


NODES: tuple[NodeSpec, ...] = (
    NodeSpec('sim_arm', 'sim_arm', ('sim',), 3,
             'MuJoCo arm in place of the arm driver; also renders camera/image_raw'),
    NodeSpec('camera', 'camera', REAL_ROBOTS, 3, 'OpenCV camera -> camera/image_raw'),
    NodeSpec('pose_target', 'pose_target', ('impedance',), 3,
             "safe twist -> a Cartesian impedance controller's pose target"),
    NodeSpec('servo_adapter', 'servo_adapter', ('servo',), 3,
             'safe twist -> MoveIt Servo; robot/ee_pose from TF; robot/reset to home'),
    NodeSpec('prompt', 'prompt', ROBOTS, 0, 'publishes the instruction'),
    NodeSpec('episode', 'episode', ROBOTS, 0, 'episode start/stop/reset, step limit, success',
             mode_params=(('finetune', (('auto_start', True), ('auto_reset', True))),)),
    NodeSpec('policy', 'policy', ROBOTS, 0, 'ONNX policy bundle -> policy/action',
             mode_params=(('finetune', (('require_episode', True), ('explore_std', FINETUNE_EXPLORE_STD))),),
             robot_params=tuple((r, (('require_episode', True),)) for r in REAL_ROBOTS)),   # moves only when asked
    NodeSpec('reward', 'reward', ROBOTS, 0, 'R(o_0, o_t, instruction) of camera frames -> reward',
             modes=('finetune',)),
    NodeSpec('actor', 'actor', ROBOTS, 0, 'transitions -> learner over pyzmq; learner bundles -> policy',
             modes=('finetune',)),
    NodeSpec('learner', 'learner', ROBOTS, 0, 'trains on the transitions, pushes policy bundles (loopback)',
             modes=('finetune',), stop_timeout_s=60.0),
    NodeSpec('safety', 'safety', ROBOTS, 1, 'safety layer -> robot/ee_twist_cmd, safety/gripper_action'),
    NodeSpec('gripper', 'gripper', ROBOTS, 2, 'gripper action -> robot/gripper_cmd'),
    NodeSpec('dashboard', 'dashboard', ROBOTS, 0, 'web page: live cameras, plots, controls (config/dashboard.yaml)'),
)
DASHBOARD = ('auto', 'true', 'false')      # auto: on in sim, off on a real robot (a page is an open door)


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    doc: str
    choices: tuple[str, ...] = ()
    sets: tuple[tuple[str, str], ...] = ()     # (node, parameter) pairs it overrides when non-empty
    modes: tuple[str, ...] = MODES             # the graphs that take it (`--show-args` lists only those)


ARGUMENTS: tuple[Argument, ...] = (
    Argument('instruction', '', 'Language instruction for the policy.', sets=(('prompt', 'instruction'),)),
    Argument('robot', 'sim', 'sim: the MuJoCo arm; real: your arm driver provides the robot/* topics; '
             "impedance: a Cartesian impedance controller follows a pose target (pose_target node); "
             'servo: MoveIt Servo takes the twist (servo_adapter node); config/robots/*.yaml as params_file.',
             choices=ROBOTS),
    Argument('bundle', '', 'Policy bundle directory (default in sim: the shipped bundle, bundles/default; '
             'a real robot needs one given).', sets=(('policy', 'bundle_path'),)),
    Argument('task', '', "sim: the scene's task (push_button, pick_up_cup, take_lid_off_saucepan, close_microwave, "
             "turn_tap, pretrain); empty: the task the instruction names, else push_button.",
             sets=(('sim_arm', 'task'),)),
    Argument('params_file', '', 'ROS 2 parameter YAML overriding config/ (top-level keys: node names).'),
    Argument('reward', 'auto', "finetune: 'task' (sim only: the task's shaped reward), 'r3m' (reward node, R3M "
             "in ONNX), 'clip' (reward node, CLIP), 'classifier' (reward node, success classifier), 'success' (1 when "
             "the episode succeeds: sim/success or the operator's label; no reward node); auto = task in sim, r3m on "
             'a real robot.', choices=REWARDS, modes=('finetune',)),
    Argument('learner', 'local', "finetune: 'local' starts the learner in this graph (loopback); "
             'tcp://HOST:PORT uses a learner started with `lamp-ros learner` (no learner node here).',
             modes=('finetune',)),
    Argument('init', '', 'finetune: the lamp-train run the local learner starts from (empty: from scratch).',
             sets=(('learner', 'init_run'),), modes=('finetune',)),
    Argument('dashboard', 'auto', 'The operator web page (http://127.0.0.1:8080/; config/dashboard.yaml): '
             'true, false, or auto = on in sim, off on a real robot.', choices=DASHBOARD),
)


def arguments_for(mode: str) -> tuple[Argument, ...]:
    """The arguments a graph of `mode` takes (launch files and `lamp-ros MODE` declare these)."""
    return tuple(a for a in ARGUMENTS if mode in a.modes)


@dataclass(frozen=True)
class NodeLaunch:
    spec: NodeSpec
    params_files: tuple[Path, ...]
    overrides: dict[str, Any] = field(default_factory=dict)


    def param(self, name: str, default: Any = None) -> Any:
        """The value the node will get for `name`: its params files in order (`/**` and its own name), then the
        overrides; `default` when none sets it (the node's declared default)."""
        value = default
        for path in self.params_files:
            loaded = yaml.safe_load(path.read_text()) or {}
            for key in ('/**', self.spec.name, f'/{self.spec.name}'):
                value = (loaded.get(key) or {}).get('ros__parameters', {}).get(name, value)
        return self.overrides.get(name, value)


@dataclass(frozen=True)
class Graph:
    mode: str
    robot: str
    nodes: tuple[NodeLaunch, ...]
    notes: tuple[str, ...]


def build(mode: str, instruction: str = '', robot: str = 'sim', bundle: str = '', params_file: str = '',
          reward: str = 'auto', learner: str = 'local', init: str = '', task: str = '',
          dashboard: str = 'auto') -> Graph:
    reward = _checked_reward(mode, robot, reward, learner)
    with_dashboard = _with_dashboard(dashboard, robot)
    instruction = instruction.strip()
    bundle = bundle or str(_default_bundle(robot))
    task, note = _scene_task(robot, task, instruction)
    notes = _notes(mode, reward, learner, instruction) + [n for n in (note, _untrained_task_note(bundle, task)) if n]
    user_files = _user_files(params_file)
    values = {'instruction': instruction, 'bundle': bundle, 'init': init, 'task': task}
    nodes = []
    for spec in NODES:
        if not _runs(spec, mode, robot, reward, learner, with_dashboard):
            continue
        files = tuple(f for f in (config_file(COMMON_PARAMS), config_file(f'{spec.name}.yaml')) if _holds_values(f))
        nodes.append(NodeLaunch(spec, files + user_files, _overrides(spec, mode, robot, reward, learner, values)))
    return Graph(mode, robot, tuple(nodes), tuple(notes))


def _with_dashboard(dashboard: str, robot: str) -> bool:
    """`auto`: the dashboard comes with the simulated arm only."""
    if dashboard not in DASHBOARD:
        raise ValueError(f'dashboard must be one of {DASHBOARD}, got {dashboard!r}')
    return dashboard == 'true' or (dashboard == 'auto' and robot == 'sim')


def _user_files(params_file: str) -> tuple[Path, ...]:
    """The user's parameter file, passed after ours so that its values win; a missing one is refused."""
    if not params_file:
        return ()
    path = Path(params_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f'params_file {path} does not exist')
    return (path,)


def _overrides(spec: NodeSpec, mode: str, robot: str, reward: str, learner: str, values: dict[str, str]) -> dict:
    """The node's parameters set by the launch: its mode and robot defaults, the launch arguments it takes,
    finetuning's wiring, and the bundle's cameras for the actor and the learner."""
    overrides = spec.params_for(mode, robot)
    overrides.update({param: values[arg.name] for arg in ARGUMENTS for node, param in arg.sets
                      if node == spec.name and values.get(arg.name)})
    overrides.update(_finetune_overrides(spec.name, mode, reward, learner))
    if spec.name in ('actor', 'learner'):       # what the robot records, what a new learner's agent sees
        overrides['cameras'] = list(_bundle_cameras(values['bundle']))
    return overrides


def _notes(mode: str, reward: str, learner: str, instruction: str) -> list[str]:
    """What the launch prints about the reward, the learner and a missing instruction."""
    notes = []
    if mode == 'finetune':
        notes.append(f'finetuning with the {reward} reward; learner: '
                     + ('in this graph (loopback)' if learner == 'local' else learner))
    if not instruction:
        notes.append("no instruction given: the policy waits for one on the 'instruction' topic")
    return notes


def _runs(spec: NodeSpec, mode: str, robot: str, reward: str, learner: str, with_dashboard: bool) -> bool:
    """Whether the node belongs in this graph: its robots and modes, and not made redundant by the arguments
    (no reward node for the task or success reward, no learner node with a remote learner)."""
    if robot not in spec.robots or mode not in spec.modes:
        return False
    if (spec.name == 'reward' and reward in ('task', 'success')) or (spec.name == 'learner' and learner != 'local'):
        return False
    return spec.name != 'dashboard' or with_dashboard


def _holds_values(path: Path) -> bool:
    """False for a config file of comments only (config/safety.yaml: the node's defaults apply): it is not
    passed to the node, as not every ROS distribution's parameter parser accepts an empty document."""
    return not path.is_file() or yaml.safe_load(path.read_text()) is not None


def _checked_reward(mode: str, robot: str, reward: str, learner: str) -> str:
    """Refuse unknown or contradictory arguments; the reward source `auto` stands for."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if robot not in ROBOTS:
        raise ValueError(f'robot must be one of {ROBOTS}, got {robot!r}')
    if reward not in REWARDS:
        raise ValueError(f'reward must be one of {REWARDS}, got {reward!r}')
    if reward == 'auto':
        reward = 'task' if robot == 'sim' else 'r3m'
    if reward == 'task' and robot != 'sim':
        raise ValueError("reward 'task' exists in simulation only; a real robot uses reward:=r3m or clip")
    if learner != 'local' and not learner.startswith('tcp://'):
        raise ValueError(f"learner must be 'local' or tcp://HOST:PORT, got {learner!r}")
    return reward


def _default_bundle(robot: str) -> Path:
    """The shipped bundle, in sim only: a real arm runs a policy only when someone chose it."""
    if robot != 'sim':
        raise ValueError('a real robot needs a bundle given (--bundle DIR, bundle:=DIR): the shipped default '
                         'bundle was trained in simulation and never runs on a real arm implicitly')
    bundle = default_bundle_dir()
    if not (bundle / 'text_encoder.onnx').is_file():
        raise FileNotFoundError(f'the default bundle {bundle} has no text_encoder.onnx (90 MB, not in git); build it '
                                f'with: lamp-export text-encoder --bundle {bundle}   (./scripts/setup.sh does)')
    return bundle


def _scene_task(robot: str, task: str, instruction: str) -> tuple[str, str]:
    """The simulated scene and a note about it: the task given, else the one the instruction names, else
    push_button (the instruction then runs as given). Imports the MuJoCo scenes, so only for the sim."""
    if robot != 'sim':
        if task:
            raise ValueError(f'task {task!r} picks a simulated scene; a real robot has none')
        return '', ''
    from sim import ENV_IDS
    from sim.task_match import task_for_instruction
    if task:
        if task not in ENV_IDS:
            raise ValueError(f'unknown task {task!r}; choose one of: {", ".join(ENV_IDS)}')
        return task, ''
    named = task_for_instruction(instruction)
    if named:
        return named, ''
    if not instruction:
        return DEFAULT_SIM_TASK, ''
    return DEFAULT_SIM_TASK, (f'instruction {instruction!r} names no known task; running it as given in the '
                              f'{DEFAULT_SIM_TASK} scene')


def _untrained_task_note(bundle: str, task: str) -> str:
    """A note when the bundle's manifest lists the tasks it was trained for and the scene's is not one of them
    (it still runs: a policy may generalise, and finetuning starts from somewhere)."""
    manifest = Path(bundle) / 'manifest.json'
    if not task or not manifest.is_file():
        return ''
    trained = json.loads(manifest.read_text()).get('tasks', [])
    if not trained or task in trained:
        return ''
    return f'the bundle was trained for {", ".join(trained)}, not {task}; running it anyway'


def _bundle_cameras(bundle: str) -> tuple[str, ...]:
    """The cameras the bundle's policy sees (front first): what the actor records for the learner."""
    from models.bundle import BundleError, read_manifest
    try:
        return read_manifest(Path(bundle), verify_files=False).cameras
    except (BundleError, OSError):
        return ('front',)                    # refused_bundle names what is wrong with it before anything starts


def _finetune_overrides(node: str, mode: str, reward: str, learner: str) -> dict[str, Any]:
    """Where the reward comes from and where the learner is: the parameters those two arguments decide."""
    if mode != 'finetune':
        return {}
    if node == 'sim_arm' and reward == 'task':
        return {'publish_task_reward': True}
    if node == 'reward':
        return {'model': REWARD_NODE_MODEL[reward]}
    if node == 'actor':                    # the learner records the source and refuses robots with another
        return {'reward_source': reward, **({'learner': learner} if learner != 'local' else {})}
    if node == 'learner':
        return {'reward_source': reward}
    return {}


def refused_bundle(g: Graph) -> str:
    """Why the policy node of `g` would refuse its bundle, or '': checked before any node starts, so a deploy
    with a bundle that cannot run fails at once instead of leaving a graph up that never acts."""
    policy = next((n for n in g.nodes if n.spec.name == 'policy'), None)
    bundle = policy.param('bundle_path', '') if policy else ''
    if not bundle:
        return ''
    from lamp_ros.core.bundle_swap import load_checked          # onnxruntime: only when a graph is run
    from models.bundle import BundleError
    try:
        load_checked(Path(bundle), threads=1,
                     control_rate_hz=float(policy.param('control_rate_hz', DEFAULT_CONTROL_RATE_HZ)),
                     action_scale_m=float(policy.param('action_scale_m', ACTION_SCALE_M)))
    except (BundleError, OSError) as e:
        return f'the policy would refuse its bundle: {e}'
    return ''
