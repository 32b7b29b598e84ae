"""The node graph, described once. Both the ROS 2 launch files (launch/*.launch.py via
lamp_ros.launch_description) and the `lamp-ros` CLI (lamp_ros.runner) start exactly this.

Parameters come, in order of precedence (later wins): config/common.yaml (values every node shares,
such as the control rate), config/<node>.yaml, the user's params_file, then launch arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamp_ros.paths import config_file, data_dir

MODES = ('deploy', 'finetune')
ROBOTS = ('sim', 'real')
REWARDS = ('auto', 'task', 'r3m', 'clip')
REWARD_NODE_MODEL = {'r3m': 'r3m-onnx', 'clip': 'clip'}      # reward argument -> the reward node's `model`
COMMON_PARAMS = 'common.yaml'


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

    def params_for(self, mode: str) -> dict[str, Any]:
        return dict(next((p for m, p in self.mode_params if m == mode), ()))


NODES: tuple[NodeSpec, ...] = (
    NodeSpec('sim_arm', 'sim_arm', ('sim',), 3,
             'MuJoCo arm in place of the arm driver; also renders camera/image_raw'),
    NodeSpec('camera', 'camera', ('real',), 3, 'OpenCV camera -> camera/image_raw'),
    NodeSpec('prompt', 'prompt', ROBOTS, 0, 'publishes the instruction'),
    NodeSpec('episode', 'episode', ROBOTS, 0, 'episode start/stop/reset, step limit, success',
             mode_params=(('finetune', (('auto_start', True), ('auto_reset', True))),)),
    NodeSpec('policy', 'policy', ROBOTS, 0, 'ONNX policy bundle -> policy/action',
             mode_params=(('finetune', (('require_episode', True),)),)),
    NodeSpec('reward', 'reward', ROBOTS, 0, 'R(o_0, o_t, instruction) of camera frames -> reward',
             modes=('finetune',)),
    NodeSpec('actor', 'actor', ROBOTS, 0, 'transitions -> learner over pyzmq; learner bundles -> policy',
             modes=('finetune',)),
    NodeSpec('learner', 'learner', ROBOTS, 0, 'trains on the transitions, pushes policy bundles (loopback)',
             modes=('finetune',)),
    NodeSpec('safety', 'safety', ROBOTS, 1, 'safety layer -> robot/ee_twist_cmd, safety/gripper_action'),
    NodeSpec('gripper', 'gripper', ROBOTS, 2, 'gripper action -> robot/gripper_cmd'),
)


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    doc: str
    choices: tuple[str, ...] = ()
    sets: tuple[tuple[str, str], ...] = ()     # (node, parameter) pairs it overrides when non-empty


ARGUMENTS: tuple[Argument, ...] = (
    Argument('instruction', '', 'Language instruction for the policy.', sets=(('prompt', 'instruction'),)),
    Argument('robot', 'sim', 'sim: the MuJoCo arm; real: your arm driver provides the robot/* topics.',
             choices=ROBOTS),
    Argument('bundle', '', 'Policy bundle directory (default: the random-weight demo bundle, if present).',
             sets=(('policy', 'bundle_path'),)),
    Argument('params_file', '', 'ROS 2 parameter YAML overriding config/ (top-level keys: node names).'),
    Argument('reward', 'auto', "finetune: 'task' (sim only: the task's shaped reward), 'r3m' (reward node, R3M "
             "in ONNX), 'clip' (reward node, CLIP); auto = task in sim, r3m on a real robot.", choices=REWARDS),
    Argument('learner', 'local', "finetune: 'local' starts the learner in this graph (loopback); "
             'tcp://HOST:PORT uses a learner started with `lamp-ros learner` (no learner node here).'),
    Argument('init', '', 'finetune: the lamp-train run the local learner starts from (empty: from scratch).',
             sets=(('learner', 'init_run'),)),
)


@dataclass(frozen=True)
class NodeLaunch:
    spec: NodeSpec
    params_files: tuple[Path, ...]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    mode: str
    robot: str
    nodes: tuple[NodeLaunch, ...]
    notes: tuple[str, ...]


def demo_bundle_dir() -> Path:
    return data_dir() / 'bundles' / 'demo'


def build(mode: str, instruction: str = '', robot: str = 'sim', bundle: str = '', params_file: str = '',
          reward: str = 'auto', learner: str = 'local', init: str = '') -> Graph:
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
    notes = []
    if mode == 'finetune':
        notes.append(f'finetuning with the {reward} reward; learner: '
                     + ('in this graph (loopback)' if learner == 'local' else learner))
    if not bundle:
        bundle = str(demo_bundle_dir())
        notes.append(f'no bundle given: using the random-weight demo bundle {bundle} (its actions are meaningless'
                     + (" until the learner's first bundle arrives)" if mode == 'finetune' else ')'))
    if not instruction.strip():
        notes.append("no instruction given: the policy waits for one on the 'instruction' topic")
    user_files = (Path(params_file).expanduser(),) if params_file else ()
    for f in user_files:
        if not f.is_file():
            raise FileNotFoundError(f'params_file {f} does not exist')
    values = {'instruction': instruction.strip(), 'bundle': bundle, 'init': init}
    nodes = []
    for spec in NODES:
        if robot not in spec.robots or mode not in spec.modes:
            continue
        if (spec.name == 'reward' and reward == 'task') or (spec.name == 'learner' and learner != 'local'):
            continue
        overrides = spec.params_for(mode)
        overrides.update({param: values[arg.name] for arg in ARGUMENTS for node, param in arg.sets
                          if node == spec.name and values.get(arg.name)})
        overrides.update(_finetune_overrides(spec.name, mode, reward, learner))
        files = (config_file(COMMON_PARAMS), config_file(f'{spec.name}.yaml')) + user_files
        nodes.append(NodeLaunch(spec, files, overrides))
    return Graph(mode, robot, tuple(nodes), tuple(notes))


def _finetune_overrides(node: str, mode: str, reward: str, learner: str) -> dict[str, Any]:
    """Where the reward comes from and where the learner is: the parameters those two arguments decide."""
    if mode != 'finetune':
        return {}
    if node == 'sim_arm' and reward == 'task':
        return {'publish_task_reward': True}
    if node == 'reward':
        return {'model': REWARD_NODE_MODEL[reward]}
    if node == 'actor' and learner != 'local':
        return {'learner': learner}
    return {}
