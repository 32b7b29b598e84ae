"""LAMP's five downstream tasks and the pretraining scene, by snake_case name."""
from __future__ import annotations

from sim.tasks.base import Task
from sim.tasks.close_microwave import CloseMicrowave
from sim.tasks.pick_up_cup import PickUpCup
from sim.tasks.pretrain import Pretrain
from sim.tasks.push_button import PushButton
from sim.tasks.take_lid_off_saucepan import TakeLidOffSaucepan
from sim.tasks.turn_tap import TurnTap

DOWNSTREAM_TASKS: dict[str, type[Task]] = {
    task.name: task for task in (PushButton, TurnTap, CloseMicrowave, PickUpCup, TakeLidOffSaucepan)}
TASK_NAMES: tuple[str, ...] = (*DOWNSTREAM_TASKS, Pretrain.name)

__all__ = ['DOWNSTREAM_TASKS', 'TASK_NAMES', 'Task', 'CloseMicrowave', 'PickUpCup', 'Pretrain', 'PushButton',
           'TakeLidOffSaucepan', 'TurnTap']
