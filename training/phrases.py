"""Which instruction phrasings imitation trains on, and which are held out to test that language generalises.

Trained: each task's first `sim_phrases` sim phrases (LAMP's own, e.g. "push button", "push the button") plus
the phrasings written below. Held out: the task's remaining sim phrases plus one written phrasing. The two
sets never share a phrase (tests/test_imitation.py checks it), so `experiments/imitation_recipe.py`'s
paraphrase table measures phrasings the policy never saw. Training on several phrasings per task keeps one
instruction embedding from standing for the task: with only the two near-identical sim phrases the policy
did worse on paraphrases than on the trained phrase (cup 0.43-0.77 against 0.78).
"""
from __future__ import annotations

from sim.tasks import DOWNSTREAM_TASKS

WRITTEN_TRAINING_PHRASES = {
    'push_button': ('push the button on the table', 'give the button a push', 'activate the button',
                    'press the switch', 'push the red button'),
    'pick_up_cup': ('pick up the mug', 'grab the cup', 'take hold of the cup', 'lift up the mug',
                    'carry the cup upwards'),
    'take_lid_off_saucepan': ('open the saucepan', 'pick up the saucepan lid', 'grab the lid by its handle',
                              'take off the cover', 'lift the cover'),
    'close_microwave': ('close the oven door', 'swing the door closed', 'push the door closed',
                        'close the open door', 'close up the microwave'),
    'turn_tap': ('open the tap', 'turn the water on', 'move the tap lever', 'switch on the tap',
                 'turn the spigot'),
}
WRITTEN_HELD_OUT_PHRASES = {
    'push_button': 'hit the button',
    'pick_up_cup': 'pick the cup up',
    'take_lid_off_saucepan': 'take the lid off the pot',
    'close_microwave': 'close the door of the microwave',
    'turn_tap': 'turn the tap handle',
}


def training_phrases(task: str, sim_phrases: int) -> tuple[str, ...]:
    """The phrasings a policy for `task` is trained on."""
    return (*DOWNSTREAM_TASKS[task].phrases[:sim_phrases], *WRITTEN_TRAINING_PHRASES[task])


def held_out_phrases(task: str, sim_phrases: int) -> tuple[str, ...]:
    """Phrasings never trained on: the evaluation's paraphrases."""
    return (*DOWNSTREAM_TASKS[task].phrases[sim_phrases:], WRITTEN_HELD_OUT_PHRASES[task])
