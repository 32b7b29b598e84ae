"""Checking an instruction that arrives from the outside world (topic, parameter, console) before a node keeps it."""
from __future__ import annotations

from lamp_ros.contract import INSTRUCTION, MAX_INSTRUCTION_CHARS
from lamp_ros.core.fault_log import FaultLog

PREVIEW_CHARS = 40


class InstructionRejected(ValueError):
    """An instruction no node should act on; the message is the reason, fit for one log line, `code` its kind."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def checked_instruction(text: str) -> str:
    """`text` stripped, or InstructionRejected when it is empty or longer than MAX_INSTRUCTION_CHARS."""
    stripped = text.strip()
    if not stripped:
        raise InstructionRejected('empty', 'empty instruction')
    if len(stripped) > MAX_INSTRUCTION_CHARS:
        preview = stripped[:PREVIEW_CHARS].encode('unicode_escape').decode('ascii')
        raise InstructionRejected('too_long', f'instruction of {len(stripped)} characters (at most '
                                              f'{MAX_INSTRUCTION_CHARS}), starting "{preview}..."')
    return stripped


def accepted_instruction(text: str, faults: FaultLog) -> str | None:
    """The checked instruction from the instruction topic, or None with the refusal in the node's fault log
    (one line per kind of bad instruction, not one per message)."""
    try:
        return checked_instruction(text)
    except InstructionRejected as e:
        faults.fault(INSTRUCTION.name, e.code, f'instruction ignored: {e}')
        return None
