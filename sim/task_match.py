"""Which downstream task an instruction names, so the simulated scene can follow the instruction
(`lamp-ros deploy --instruction "lift the cup"` shows the cup scene). ROS-free.

Rules, case-insensitive, on whole words:
  1. a task's phrase (sim/tasks/*: `phrases`) in the instruction names that task; the longest matching
     phrase wins ("push the microwave door shut" is close_microwave, not push_button);
  2. otherwise the key nouns (KEY_NOUNS, singular or with a plural s) name the tasks they belong to;
  3. one named task is the answer; none, or several ("put the cup in the microwave"), is None.
"""
from __future__ import annotations

import re

from sim.tasks import DOWNSTREAM_TASKS

KEY_NOUNS: dict[str, tuple[str, ...]] = {
    'push_button': ('button',),
    'pick_up_cup': ('cup', 'mug'),
    'take_lid_off_saucepan': ('lid', 'saucepan', 'pan', 'pot'),
    'close_microwave': ('microwave',),
    'turn_tap': ('tap', 'faucet'),
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(words[i:i + n] == phrase for i in range(len(words) - n + 1))


def tasks_named(text: str) -> tuple[str, ...]:
    """Every downstream task the instruction names (by the rules above), in DOWNSTREAM_TASKS order."""
    words = _words(text)
    phrases = [(len(p), name) for name, task in DOWNSTREAM_TASKS.items() for p in map(_words, task.phrases)
               if _contains(words, p)]
    if phrases:
        longest = max(n for n, _ in phrases)
        return tuple(dict.fromkeys(name for n, name in phrases if n == longest))
    present = set(words)
    return tuple(name for name in DOWNSTREAM_TASKS
                 if any(noun in present or noun + 's' in present for noun in KEY_NOUNS[name]))


def task_for_instruction(text: str) -> str | None:
    """The one downstream task the instruction names, or None (no task, or several)."""
    named = tasks_named(text)
    return named[0] if len(named) == 1 else None
