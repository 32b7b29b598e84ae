"""The policy network: camera image + robot state + instruction embedding -> action in [-1, 1].

Preprocessing (uint8 HWC -> float CHW in [0, 1]) happens inside `forward`, so the exported ONNX graph
takes the camera's rgb8 frame as it is and the robot side does no per-step numpy work.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lamp_ros.contract import ACTION_DIM


@dataclass(frozen=True)
class PolicyNetConfig:
    image_size: int = 64                          # square input, pixels
    state_dim: int = 8
    embedding_dim: int = 768                      # DistilBERT's width (R3M's language encoder)
    channels: tuple[int, ...] = (16, 32, 64, 64)  # one stride-2 3x3 conv per entry
    hidden: int = 256
    recurrent_dim: int = 0                        # > 0: a GRUCell carries state between control steps

    def __post_init__(self) -> None:
        stride = 2 ** len(self.channels)
        if self.image_size % stride:
            raise ValueError(f'image_size {self.image_size} must be a multiple of {stride} '
                             f'({len(self.channels)} stride-2 convs)')

    @property
    def feature_size(self) -> int:
        """Height (= width) of the last conv feature map."""
        return self.image_size // 2 ** len(self.channels)


class PolicyNet(nn.Module):
    """Small conv encoder + MLP fusing the image with state and instruction; tanh action head."""

    def __init__(self, config: PolicyNetConfig = PolicyNetConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in config.channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.encoder = nn.Sequential(*layers)
        flat = c_in * config.feature_size ** 2
        self.image_proj = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden), nn.ReLU())
        self.state_proj = nn.Sequential(nn.Linear(config.state_dim, 64), nn.ReLU())
        self.instruction_proj = nn.Sequential(nn.Linear(config.embedding_dim, 128), nn.ReLU())
        self.fuse = nn.Sequential(nn.Linear(config.hidden + 64 + 128, config.hidden), nn.ReLU())
        self.gru = nn.GRUCell(config.hidden, config.recurrent_dim) if config.recurrent_dim > 0 else None
        head_in = config.recurrent_dim if config.recurrent_dim > 0 else config.hidden
        self.head = nn.Linear(head_in, ACTION_DIM)

    @property
    def recurrent(self) -> bool:
        return self.gru is not None

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """Recurrent state at episode start (zeros), what the runtime feeds after `reset()`."""
        return torch.zeros(batch, self.config.recurrent_dim)

    def forward(self, image: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                h: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """image uint8 [B,H,W,3] RGB, state f32 [B,S], instruction f32 [B,E] (, h f32 [B,R])
        -> action f32 [B,4] (, new h f32 [B,R])."""
        x = image.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        z = self.image_proj(self.encoder(x))
        z = self.fuse(torch.cat([z, self.state_proj(state), self.instruction_proj(instruction)], dim=1))
        if self.gru is None:
            return torch.tanh(self.head(z))
        if h is None:
            raise ValueError('recurrent PolicyNet needs the recurrent state h (initial_state() at episode start)')
        h_new = self.gru(z, h)
        return torch.tanh(self.head(h_new)), h_new
