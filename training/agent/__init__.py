"""LAMP's language-conditioned agent (torch, workstation side).

The interface the training loops use, and the only one they use:

    agent = DrQAgent(AgentConfig(...), seed=0)
    action, state = agent.act(obs, instruction_embedding, state=None, explore=True)   # obs: image_<camera>, state
    metrics = agent.update(batch)                                                     # dict of floats
    policy = agent.exportable_policy()                                                # for training.export.export_bundle

config.py (AgentConfig), networks.py (DrQ-v2 encoder, actor, critic), novelty.py (disagreement ensemble),
drq.py (the agent). docs/training.md explains the choices.
"""
from __future__ import annotations

from training.agent.config import AgentConfig
from training.agent.drq import DrQAgent

__all__ = ['AgentConfig', 'DrQAgent']
