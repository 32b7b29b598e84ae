"""Plan2Explore-style novelty (Sekar et al. 2020) without a world model: an ensemble of one-step predictors
of the agent's next latent features, whose disagreement is the intrinsic reward.

Each head maps (latent z_t, action a_t) to a prediction of z_{t+1} (LAMP's disag_action_cond, disag_offset 1);
all heads see the same batches and differ by their initialization, as in Plan2Explore. Where the agent has
been often the heads agree; on unseen transitions they disagree. Intrinsic reward = standard deviation
across heads, averaged over the latent dimensions (Plan2Explore's `disag`).

The heads run as one batched matrix product per layer (weights [heads, in, out]): ten small MLPs cost about
as much as one wide layer.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """`heads` independent Linear layers applied together: [heads, B, in] -> [heads, B, out]."""

    def __init__(self, heads: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)        # nn.Linear's default initialization, per head
        self.weight = nn.Parameter(torch.empty(heads, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(heads, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class DisagreementEnsemble(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int, heads: int = 10) -> None:
        super().__init__()
        if heads < 2:
            raise ValueError(f'an ensemble needs at least 2 heads to disagree, got {heads}')
        self.heads = heads
        self.layers = nn.ModuleList([EnsembleLinear(heads, in_dim, hidden), EnsembleLinear(heads, hidden, hidden),
                                     EnsembleLinear(heads, hidden, out_dim)])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, in] -> predictions of every head [heads, B, out]."""
        x = inputs.unsqueeze(0).expand(self.heads, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum over heads of each head's mean squared error (Plan2Explore's sum of head likelihoods)."""
        return ((self(inputs) - targets.unsqueeze(0)) ** 2).mean(dim=(1, 2)).sum()

    @torch.no_grad()
    def disagreement(self, inputs: torch.Tensor) -> torch.Tensor:
        """[B, in] -> [B]: std across heads, mean over output dimensions."""
        return self(inputs).std(dim=0).mean(dim=-1)
