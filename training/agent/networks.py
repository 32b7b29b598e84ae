"""DrQ-v2's networks (Yarats et al. 2021), conditioned on the robot state and the instruction embedding.

    encoder   camera image(s), stacked on channels -> 3x3 convs with ReLU -> flat features (trained by the
              critic loss, as DrQ-v2, + the BC and reconstruction terms where they are on)
    trunk     Linear -> LayerNorm -> tanh to `feature_dim` (one per actor and critic)
    actor     [FiLM(trunk | language), normalised state, language] -> MLP -> tanh mean action
    critic    [trunk, normalised state, language, action(, privileged state)] -> two MLPs -> Q1, Q2 (clipped
              double Q; optionally layer-normed, as RLPD; the privileged state only in sim-only training)
    decoder   (optional, agent.recon_weight > 0) encoder features -> the input frames at RECON_SIZE pixels

Language pathway: the frozen text encoder's embedding (384-d MiniLM, 768-d DistilBERT) is normalised
(LayerNorm without parameters: DistilBERT's mean embeddings have a few huge dimensions) and projected by a
small learned Linear to `language_dim` (32) before it meets anything else. It then scales and shifts the image
trunk (FiLM, initialised to the identity) and sits beside the state. Concatenating the raw 768-d embedding, as
before, pinned ~90% of the first layer's ReLUs to a constant and made the critic nearly linear in the action.

State normalisation: the robot state is mapped to about [-1, 1] with fixed buffers (`state_low`,
`state_high`, set from the observation space or the data) inside the module, so the exported policy takes
the raw state the robot publishes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.agent.config import AgentConfig


def images_to_input(images: list[torch.Tensor]) -> torch.Tensor:
    """Camera images uint8 [B, H, W, 3] (one per camera) -> float [B, 3 * cameras, H, W], still 0..255."""
    return torch.cat([image.permute(0, 3, 1, 2) for image in images], dim=1).to(torch.float32)


def spatial_softmax(features: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, 2C]: each channel's expected (x, y) position in [-1, 1] under a softmax over its map
    (Levine et al. 2016): a sub-cell location of what the channel responds to."""
    b, c, h, w = features.shape
    weights = torch.softmax(features.reshape(b, c, h * w), dim=-1)
    ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, h), torch.linspace(-1.0, 1.0, w), indexing='ij')
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).to(features.dtype)             # [H*W, 2]
    return (weights @ grid).reshape(b, 2 * c)


class Encoder(nn.Module):
    """Convs in channels-last layout: 2-3x faster on a CPU (oneDNN) than the default, measured. With
    `keypoints`, the flat features are followed by each last-layer channel's spatial-softmax position."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3 * len(config.cameras)
        for c_out, stride in zip(config.channels, config.strides):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride), nn.ReLU(inplace=True)]
            c_in = c_out
        self.convs = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.keypoints = config.keypoints
        self.output_dim = c_in * config.conv_output_size() ** 2 + (2 * c_in if config.keypoints else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float [B, C, H, W] in 0..255 -> [B, output_dim]."""
        x = (x.contiguous(memory_format=torch.channels_last) - 127.5).mul_(1.0 / 255.0)   # DrQ's x / 255 - 0.5
        maps = self.convs(x)
        if not self.keypoints:
            return maps.flatten(1)
        return torch.cat([maps.flatten(1), spatial_softmax(maps)], dim=1)


RECON_SIZE = 32          # side of the frames the decoder reconstructs (the encoder's input, area-downsampled)


class Decoder(nn.Module):
    """Encoder features -> the encoder's input frames at RECON_SIZE (SAC-AE's pixel reconstruction, Yarats et al.
    2019): a loss that makes the encoder keep what the images show, where the TD loss alone lets it drop whatever
    the current reward does not need (LAMP's world model learns its representation by reconstruction too)."""

    def __init__(self, config: AgentConfig, encoder_dim: int) -> None:
        super().__init__()
        width, side = 32, RECON_SIZE // 4
        self.net = nn.Sequential(
            nn.Linear(encoder_dim, width * side * side), nn.ReLU(), nn.Unflatten(1, (width, side, side)),
            nn.ConvTranspose2d(width, width, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, 3 * len(config.cameras), kernel_size=4, stride=2, padding=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, encoder_dim] -> [B, 3 * cameras, RECON_SIZE, RECON_SIZE], on the scale of recon_target."""
        return self.net(features)


def recon_target(x: torch.Tensor) -> torch.Tensor:
    """Encoder input float [B, C, H, W] in 0..255 -> what the decoder should produce: area-downsampled to
    RECON_SIZE, on the encoder's own -0.5..0.5 scale."""
    return F.interpolate(x, size=(RECON_SIZE, RECON_SIZE), mode='area') / 255.0 - 0.5


def trunk(in_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


def mlp(in_dim: int, hidden: int, out_dim: int, layernorm: bool = False) -> nn.Sequential:
    """Two hidden ReLU layers; `layernorm` puts a LayerNorm before each ReLU (RLPD's critic: it keeps Q values
    from running away on actions the data never shows)."""
    def block(n_in: int) -> list[nn.Module]:       # no norm: the layout (and state_dict keys) of older runs
        return [nn.Linear(n_in, hidden), *([nn.LayerNorm(hidden)] if layernorm else []), nn.ReLU()]
    return nn.Sequential(*block(in_dim), *block(hidden), nn.Linear(hidden, out_dim))


class StateNorm(nn.Module):
    """Raw robot state -> about [-1, 1] per key, from fixed bounds kept as buffers (saved and exported)."""

    def __init__(self, state_dim: int) -> None:
        super().__init__()
        self.register_buffer('state_low', -torch.ones(state_dim))
        self.register_buffer('state_high', torch.ones(state_dim))

    def set_bounds(self, low: np.ndarray, high: np.ndarray) -> None:
        low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        if low.shape != self.state_low.shape or high.shape != self.state_high.shape or not np.all(high > low):
            raise ValueError(f'state bounds must be two [{len(self.state_low)}] arrays with high > low, '
                             f'got {low} and {high}')
        self.state_low.copy_(torch.from_numpy(low))
        self.state_high.copy_(torch.from_numpy(high))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_low) * (2.0 / (self.state_high - self.state_low)) - 1.0


class Language(nn.Module):
    """Instruction embedding -> a small learned code: parameter-free LayerNorm, Linear, tanh."""

    def __init__(self, embedding_dim: int, language_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embedding_dim, elementwise_affine=False)
        self.proj = nn.Linear(embedding_dim, language_dim)

    def forward(self, instruction: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(self.norm(instruction)))


class Actor(nn.Module):
    def __init__(self, config: AgentConfig, encoder_dim: int) -> None:
        super().__init__()
        self.trunk = trunk(encoder_dim, config.feature_dim)
        self.state_norm = StateNorm(config.state_dim)
        self.language = Language(config.embedding_dim, config.language_dim)
        self.film = nn.Linear(config.language_dim, 2 * config.feature_dim)
        nn.init.zeros_(self.film.weight)                  # FiLM starts as the identity: language cannot swamp
        nn.init.zeros_(self.film.bias)
        self.policy = mlp(config.feature_dim + config.state_dim + config.language_dim, config.hidden_dim,
                          config.action_dim)

    def hidden(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """The conditioned input of the action MLP (auxiliary heads read it too)."""
        language = self.language(instruction)
        scale, shift = self.film(language).chunk(2, dim=1)
        z = self.trunk(features) * (1.0 + scale) + shift
        return torch.cat([z, self.state_norm(state), language], dim=1)

    def forward(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """Encoder features, raw state, instruction embedding -> mean action in [-1, 1]."""
        return torch.tanh(self.policy(self.hidden(features, state, instruction)))


class Critic(nn.Module):
    def __init__(self, config: AgentConfig, encoder_dim: int) -> None:
        super().__init__()
        self.trunk = trunk(encoder_dim, config.feature_dim)
        self.state_norm = StateNorm(config.state_dim)
        self.language = Language(config.embedding_dim, config.language_dim)
        self.privileged_dim = config.privileged_dim
        in_dim = (config.feature_dim + config.state_dim + config.language_dim + config.action_dim
                  + config.privileged_dim)
        self.q1 = mlp(in_dim, config.hidden_dim, 1, config.critic_layernorm)
        self.q2 = mlp(in_dim, config.hidden_dim, 1, config.critic_layernorm)
        self.more = nn.ModuleList([mlp(in_dim, config.hidden_dim, 1, config.critic_layernorm)     # RLPD's ensemble
                                   for _ in range(config.critic_heads - 2)])

    def forward(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                action: torch.Tensor, privileged: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """One Q estimate [B] per head (2, or agent.critic_heads); `privileged` [B, privileged_dim] is required
        exactly when the critic was built with a privileged_dim."""
        return self.q_from_latent(self.trunk(features), state, instruction, action, privileged)

    def q_from_latent(self, latent: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                      action: torch.Tensor, privileged: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        inputs = [latent, self.state_norm(state), self.language(instruction), action]
        if (privileged is not None) != bool(self.privileged_dim):
            raise ValueError(f'this critic takes privileged state of width {self.privileged_dim}; '
                             f'got {"none" if privileged is None else tuple(privileged.shape)}')
        h = torch.cat(inputs if privileged is None else [*inputs, privileged], dim=1)
        return tuple(head(h).squeeze(1) for head in self.heads())

    def heads(self) -> list[nn.Sequential]:
        return [self.q1, self.q2, *self.more]

    def output_layers(self) -> list[nn.Linear]:
        """The last layer of each Q head: what a linear probe trains (LAMP's critic_linear_probe)."""
        return [head[-1] for head in self.heads()]
