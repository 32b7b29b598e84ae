"""Which task an instruction names (sim/task_match.py): the simulated scene follows the instruction."""
from __future__ import annotations

import pytest

from sim.task_match import KEY_NOUNS, task_for_instruction, tasks_named
from sim.tasks import DOWNSTREAM_TASKS


def test_every_phrase_of_every_task_names_that_task() -> None:
    assert set(KEY_NOUNS) == set(DOWNSTREAM_TASKS)
    for name, task in DOWNSTREAM_TASKS.items():
        for phrase in task.phrases:
            assert task_for_instruction(phrase) == name, phrase
            assert task_for_instruction(phrase.upper() + '!') == name, phrase


@pytest.mark.parametrize('text, task', [
    ('press the button', 'push_button'),
    ('Please push the red buttons.', 'push_button'),
    ('lift the mug', 'pick_up_cup'),
    ('grab a cup', 'pick_up_cup'),
    ('remove the lid from the pan', 'take_lid_off_saucepan'),
    ('open the pot', 'take_lid_off_saucepan'),
    ('shut the microwave door', 'close_microwave'),
    ('push the microwave door shut', 'close_microwave'),      # the longest phrase wins over 'push ...'
    ('turn the faucet', 'turn_tap'),
    ('turn on the tap', 'turn_tap'),
])
def test_paraphrases_name_their_task(text: str, task: str) -> None:
    assert task_for_instruction(text) == task


@pytest.mark.parametrize('text', ['wave hello', '', 'pick up the object', 'open the panel',
                                  'cupboard buttonhole', 'tapestry'])
def test_no_task_named(text: str) -> None:
    assert task_for_instruction(text) is None and tasks_named(text) == ()


def test_several_tasks_named_is_no_single_task() -> None:
    assert set(tasks_named('put the cup in the microwave')) == {'pick_up_cup', 'close_microwave'}
    assert task_for_instruction('put the cup in the microwave') is None
