"""Reading a status message's JSON: one place that says what is wrong with a bad one.

Every status topic carries a JSON object; subscribers drop a bad message with one log line and keep what they
knew, so the reader's job is only to say, in one short line, why the text is not a JSON object.
"""
from __future__ import annotations

import json
from typing import Any

SHOWN_CHARS = 60     # how much of a bad message an error quotes


def json_object(text: str) -> dict[str, Any]:
    """`text` as a JSON object; ValueError('not JSON (...)' or 'not a JSON object') quoting its start otherwise."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f'not JSON ({e}): {text[:SHOWN_CHARS]!r}') from None
    if not isinstance(value, dict):
        raise ValueError(f'not a JSON object: {text[:SHOWN_CHARS]!r}')
    return value
