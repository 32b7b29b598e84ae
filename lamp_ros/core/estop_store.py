"""The latched e-stop on disk, so that it survives a restart of the safety node.

`estop` is a latched topic, but a latch lives in its publisher: once the console or button node that
engaged the e-stop is gone, a restarted safety node would hear nothing and move. So the safety node
writes every change of its latched state here (atomically: a crash leaves the old state or the new one)
and starts from it. A file that cannot be read as a state counts as engaged: unknown is not safe.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from lamp_ros.fileio import atomic_write_text
from lamp_ros.paths import state_dir

FORMAT = 'lamp_ros.estop_state'


def default_estop_file(node_name: str) -> Path:
    """One file per safety node (fully qualified name), so that two graphs in two namespaces keep apart."""
    return state_dir() / f"{node_name.strip('/').replace('/', '.') or 'safety'}.estop.json"


@dataclass(frozen=True)
class EstopState:
    engaged: bool
    detail: str          # where the state came from, for the start-up log line


class EstopStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()

    def load(self) -> EstopState:
        if not self.path.exists():
            return EstopState(False, f'no saved e-stop state at {self.path}')
        text = self.path.read_text()
        state = _parse(text)
        if state is None:
            return EstopState(True, f'{self.path} is not an e-stop state ({text[:80]!r}): treated as engaged')
        engaged, changed = state
        return EstopState(engaged, f"{'engaged' if engaged else 'released'} since {changed} ({self.path})")

    def save(self, engaged: bool) -> None:
        """Written before the node acts on a release and after it has stopped the arm on an engage."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        changed = time.strftime('%Y-%m-%dT%H:%M:%S%z')
        atomic_write_text(self.path, json.dumps({'format': FORMAT, 'engaged': bool(engaged), 'changed': changed}) + '\n')


def _parse(text: str) -> tuple[bool, str] | None:
    """(engaged, when) from a state file's text; None when it is no such state."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None                  # reported by load() and treated as engaged
    if not isinstance(data, dict) or data.get('format') != FORMAT or not isinstance(data.get('engaged'), bool):
        return None
    return data['engaged'], str(data.get('changed', '?'))
