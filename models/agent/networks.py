"""DrQ-v2's networks (Yarats et al. 2021), conditioned on the robot state and the instruction embedding.

    encoder   camera image(s), stacked on channels -> 3x3 convs with ReLU -> flat features (trained by the
              critic loss only, as DrQ-v2)
    trunk     Linear -> LayerNorm -> tanh to `feature_dim` (one per actor and critic)
    actor     [trunk, state, instruction] -> MLP -> tanh mean action
    critic    [trunk, state, instruction, action] -> two MLPs -> Q1, Q2 (clipped double Q)

The instruction embedding enters the heads next to the state, as LAMP appends it to the agent's state. It
passes a LayerNorm without parameters first: DistilBERT's mean embeddings have a few very large dimensions.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.agent.config import AgentConfig


def images_to_input(images: list[torch.Tensor]) -> torch.Tensor:
    """Camera images uint8 [B, H, W, 3] (one per camera) -> float [B, 3 * cameras, H, W], still 0..255."""
    return torch.cat([image.permute(0, 3, 1, 2) for image in images], dim=1).to(torch.float32)


def random_shift(images: np.ndarray, pad: int, offsets: np.ndarray) -> np.ndarray:
    """DrQ's augmentation on uint8 [N, H, W, C]: pad by edge replication, crop back at offsets [N, 2] (row, col,
    each in 0..2*pad). Done in numpy on bytes: ~10x faster on a CPU than gathering float tensors."""
    if pad == 0:
        return images
    n, h, w = images.shape[:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge')
    out = np.empty_like(images)
    for i, (row, col) in enumerate(offsets):
        out[i] = padded[i, row:row + h, col:col + w]
    return out


class Encoder(nn.Module):
    """Convs in channels-last layout: 2-3x faster on a CPU (oneDNN) than the default, measured."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3 * len(config.cameras)
        for c_out, stride in zip(config.channels, config.strides):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride), nn.ReLU(inplace=True)]
            c_in = c_out
        self.convs = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.output_dim = c_in * config.conv_output_size() ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float [B, C, H, W] in 0..255 -> [B, output_dim]."""
        x = (x.contiguous(memory_format=torch.channels_last) - 127.5).mul_(1.0 / 255.0)   # DrQ's x / 255 - 0.5
        return self.convs(x).flatten(1)


def trunk(in_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out_dim))


class Actor(nn.Module):
    def __init__(self, config: AgentConfig, encoder_dim: int) -> None:
        super().__init__()
        self.trunk = trunk(encoder_dim, config.feature_dim)
        self.instruction_norm = nn.LayerNorm(config.embedding_dim, elementwise_affine=False)
        self.policy = mlp(config.feature_dim + config.state_dim + config.embedding_dim, config.hidden_dim,
                          config.action_dim)

    def forward(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """Encoder features, state, instruction embedding -> mean action in [-1, 1]."""
        h = torch.cat([self.trunk(features), state, self.instruction_norm(instruction)], dim=1)
        return torch.tanh(self.policy(h))


class Critic(nn.Module):
    def __init__(self, config: AgentConfig, encoder_dim: int) -> None:
        super().__init__()
        self.trunk = trunk(encoder_dim, config.feature_dim)
        self.instruction_norm = nn.LayerNorm(config.embedding_dim, elementwise_affine=False)
        in_dim = config.feature_dim + config.state_dim + config.embedding_dim + config.action_dim
        self.q1 = mlp(in_dim, config.hidden_dim, 1)
        self.q2 = mlp(in_dim, config.hidden_dim, 1)

    def forward(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q_from_latent(self.trunk(features), state, instruction, action)

    def q_from_latent(self, latent: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                      action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([latent, state, self.instruction_norm(instruction), action], dim=1)
        return self.q1(h).squeeze(1), self.q2(h).squeeze(1)

    def output_layers(self) -> list[nn.Linear]:
        """The last layer of each Q head: what a linear probe trains (LAMP's critic_linear_probe)."""
        return [self.q1[-1], self.q2[-1]]
