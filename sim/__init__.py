"""Simulated LAMP manipulation: the randomized pretraining scene and five downstream tasks (MuJoCo).

Importing this package registers the gymnasium environments:

    lamp/PushButton-v0  lamp/TurnTap-v0  lamp/CloseMicrowave-v0  lamp/PickUpCup-v0
    lamp/TakeLidOffSaucepan-v0  lamp/Pretrain-v0

    env = gymnasium.make('lamp/PushButton-v0', image_size=128, control_dt=0.1, randomize=True)
    env = sim.make('push_button')                    # the same, by snake_case task name
    env = sim.make('push_button', backend='rlbench') # RLBench/CoppeliaSim, where installed

docs/sim.md describes the scenes, rewards, randomization and the motion API.
"""
from __future__ import annotations

import os
from typing import Any

os.environ.setdefault('MUJOCO_GL', 'egl')   # headless offscreen rendering; must precede any mujoco import

import gymnasium  # noqa: E402

SIM_VERSION = 'lamp-sim-1'
"""The scenes, physics, rewards and success tests as a whole: bumped when a change makes transitions of one
version unlike another's. Simulated robots announce it to the learner, which keeps one version per run."""

STATE_KEYS: tuple[str, ...] = ('ee_x', 'ee_y', 'ee_z', 'gripper_opening')
"""Observation 'state' layout: a subset of lamp_ros.contract.STATE_KEYS, so the ROS policy node
rebuilds exactly this vector from robot/ee_pose and robot/gripper_state."""

EPISODE_STEPS = 150
ENV_IDS: dict[str, str] = {
    'push_button': 'lamp/PushButton-v0',
    'turn_tap': 'lamp/TurnTap-v0',
    'close_microwave': 'lamp/CloseMicrowave-v0',
    'pick_up_cup': 'lamp/PickUpCup-v0',
    'take_lid_off_saucepan': 'lamp/TakeLidOffSaucepan-v0',
    'pretrain': 'lamp/Pretrain-v0',
}
DOWNSTREAM_TASK_NAMES: tuple[str, ...] = tuple(name for name in ENV_IDS if name != 'pretrain')

for _task, _env_id in ENV_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(_env_id, entry_point='sim.env:make_env', max_episode_steps=EPISODE_STEPS,
                           kwargs={'task': _task})


def env_id(task: str) -> str:
    """The gymnasium id of a task given by snake_case name (push_button) or id (lamp/PushButton-v0)."""
    if task in ENV_IDS:
        return ENV_IDS[task]
    if task in ENV_IDS.values():
        return task
    raise ValueError(f'unknown task {task!r}; choose one of {list(ENV_IDS)}')


def make(task: str, **kwargs: Any) -> gymnasium.Env:
    """gymnasium.make for a task by snake_case name or id; kwargs as for gymnasium.make."""
    return gymnasium.make(env_id(task), **kwargs)
