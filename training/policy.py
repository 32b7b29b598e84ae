"""The policy network, once: camera image + robot state + instruction embedding -> action in [-1, 1].

Everything that produces a bundle builds this module: the DrQ agent's encoder and actor are its parts,
behaviour cloning trains it whole, and random-weight bundles are a fresh one. Its forward is the bundle's
calling convention (image uint8 [B, H, W, 3] rgb8, raw state f32 [B, S], instruction f32 [B, E]), so the
exported graph does the image scaling and the state normalisation and the robot passes what it measures.
"""
from __future__ import annotations

import torch
from torch import nn

from training.agent.config import AgentConfig
from training.agent.networks import Actor, Encoder, images_to_input


class PolicyNet(nn.Module):
    """Encoder (3x3 convs) + actor (trunk, FiLM language pathway, normalised state, MLP, tanh)."""

    recurrent = False                 # the bundle format allows recurrent policies; this one is feed-forward

    def __init__(self, config: AgentConfig) -> None:
        super().__init__()
        if config.cameras != ('front',):
            raise ValueError(f'a policy bundle carries the front camera only; this config uses {config.cameras}')
        self.config = config
        self.encoder = Encoder(config)
        self.actor = Actor(config, self.encoder.output_dim)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, 0)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(images_to_input([image]))

    def forward(self, image: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        return self.actor(self.features(image), state, instruction)
