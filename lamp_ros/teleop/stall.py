"""When a scripted operator takes over (HIL-SERL's interventions, played by the scripted expert in simulation):
once an episode has run `stall_steps` steps without success, the operator drives it until it ends.

One rule, two callers: the graph's scripted operator (lamp_ros.nodes.scripted_operator, `StallRule`: counts the
episodes it sees on episode/status) and lamp-train's simulated finetuning (`StallTakeover`, one per helped
episode: lamp-train counts helped episodes in its checkpointed episode counter).
"""
from __future__ import annotations

from dataclasses import dataclass


def stalled(steps: int, stall_steps: int, success: bool) -> bool:
    """Whether an episode that has run `steps` steps, successful so far or not, needs the operator."""
    return steps >= stall_steps and not success


@dataclass
class StallTakeover:
    """One episode's operator: from the first stalled step on, it drives until the episode ends."""
    stall_steps: int
    steps: int = 0
    driving: bool = False

    def drives(self, episode_success: bool) -> bool:
        """Whether the operator drives the next step, given whether the episode has succeeded so far."""
        self.driving = self.driving or stalled(self.steps, self.stall_steps, episode_success)
        self.steps += 1
        return self.driving


@dataclass
class StallRule:
    """The graph's operator: in the first `help_episodes` episodes seen running, a `StallTakeover` per episode."""
    help_episodes: int
    stall_steps: int
    episodes_seen: int = 0
    episodes_helped: int = 0
    helping: bool = False
    _episode: int | None = None

    def update(self, status: dict, steps: int) -> bool:
        """Whether to drive now, given the newest episode/status and the control steps of its episode so far."""
        if status.get('state') != 'running':
            self.helping = False
            return False
        episode = int(status.get('episode', 0))
        if episode != self._episode:
            self._episode, self.helping = episode, False
            self.episodes_seen += 1
        if (not self.helping and self.episodes_seen <= self.help_episodes
                and stalled(steps, self.stall_steps, bool(status.get('success')))):
            self.helping = True
            self.episodes_helped += 1
        return self.helping
