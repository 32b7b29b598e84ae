"""The policy network, once: camera images + robot state + instruction embedding -> action in [-1, 1].

Everything that produces a bundle builds this module: the DrQ agent's encoder and actor are its parts,
behaviour cloning trains it whole, and random-weight bundles are a fresh one. Its forward is the bundle's
calling convention (image uint8 [B, H, W, 3] rgb8 from the front camera, raw state f32 [B, S], instruction
f32 [B, E], then one more uint8 image per further camera, e.g. the wrist's), so the exported graph does the
image scaling and the state normalisation and the robot passes what it measures. Further cameras' images are
stacked onto the front image's channels (one encoder), as in DrQ's multi-view setups.
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
        if config.cameras[0] != 'front':
            raise ValueError(f'a policy sees the front camera first; this config uses {config.cameras}')
        self.config = config
        self.encoder = Encoder(config)
        self.actor = Actor(config, self.encoder.output_dim)

    @property
    def extra_cameras(self) -> tuple[str, ...]:
        """The cameras after the front one, in the order their images follow the instruction."""
        return self.config.cameras[1:]

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, 0)

    def features(self, image: torch.Tensor, *extra_images: torch.Tensor) -> torch.Tensor:
        if len(extra_images) != len(self.extra_cameras):
            raise ValueError(f'the policy takes images from {self.config.cameras}, got {1 + len(extra_images)}')
        return self.encoder(images_to_input([image, *extra_images]))

    def forward(self, image: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                *extra_images: torch.Tensor) -> torch.Tensor:
        return self.actor(self.features(image, *extra_images), state, instruction)
