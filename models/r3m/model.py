"""The R3M network (Nair et al. 2022; facebookresearch/r3m, r3m/models/models_r3m.py and models_language.py).

    convnet   torchvision ResNet-18/34/50, fc removed: uint8 image -> /255 -> ImageNet normalization -> [N, D]
              (D = 512 for 18/34, 2048 for 50). No resize: frames are embedded at the size given, as LAMP does
              with its 128x128 frames (R3M's forward only resizes when told a non-224 obs_shape).
    lang_enc  DistilBERT, mean of the last hidden state over the instruction's tokens -> [768]
    lang_rew  pred = Linear(2D+768, H), ReLU, Linear(H, H), ReLU, Linear(H, H), ReLU, Linear(H, H), ReLU,
              Linear(H, 1) on concat(e(o_0), e(o_t), l); the raw output is the reward (no sigmoid: R3M trains it
              as an InfoNCE logit, and LAMP's get_reward_le returns it as is).

Submodule names follow R3M's, so an official state dict maps onto this module one to one (see checkpoint.py).
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from models.r3m.layout import IMAGE_DIMS, R3MConfig, check_size
from models.text_encoder import SentenceEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_convnet(size: int) -> torchvision.models.ResNet:
    """torchvision's ResNet-`size` with the classifier replaced by identity (R3M's `convnet`)."""
    check_size(size)
    convnet = getattr(torchvision.models, f'resnet{size}')(weights=None)
    convnet.fc = nn.Identity()
    return convnet


class LanguageRewardHead(nn.Module):
    """R3M's `LanguageReward.pred`: five Linear layers with ReLU between, one scalar out."""

    def __init__(self, image_dim: int, lang_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.image_dim, self.lang_dim = image_dim, lang_dim
        self.pred = nn.Sequential(nn.Linear(2 * image_dim + lang_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, 1))

    def forward(self, first: torch.Tensor, current: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """first [N|1, D], current [N|1, D], instruction [N|1, L] -> reward [N].

        The first layer on concat(first, current, instruction) is split into its three column blocks, each
        applied to its own rows and then broadcast-added: the same sum, but a single first frame or
        instruction costs one row instead of N copies.
        """
        d = self.image_dim
        layer = self.pred[0]
        hidden = (F.linear(first, layer.weight[:, :d]) + F.linear(current, layer.weight[:, d:2 * d])
                  + F.linear(instruction, layer.weight[:, 2 * d:], layer.bias))
        return self.pred[1:](hidden).squeeze(-1)


class R3MNet(nn.Module):
    """R3M's image encoder, language encoder and language-reward head (in eval mode)."""

    def __init__(self, config: R3MConfig, lang_enc: SentenceEncoder) -> None:
        super().__init__()
        self.config = config
        self.convnet = build_convnet(config.size)
        self.lang_enc = lang_enc
        self.lang_rew = LanguageRewardHead(IMAGE_DIMS[config.size], lang_enc.dim, config.hidden_dim)
        # Not in the state dict: R3M applies the normalization as a transform, not as weights.
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @staticmethod
    def random(size: int = 18, hidden_dim: int = 1024, lang_enc: SentenceEncoder | None = None,
               seed: int = 0) -> 'R3MNet':
        """R3M with random weights (benches, tests, a starting point for finetuning); caller's RNG untouched.

        Without `lang_enc`, a full-width (768) two-layer random DistilBERT."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if lang_enc is None:
                lang_enc = SentenceEncoder.random(n_layers=2, seed=seed)
            return R3MNet(R3MConfig(size=size, hidden_dim=hidden_dim), lang_enc)

    @property
    def image_dim(self) -> int:
        return IMAGE_DIMS[self.config.size]

    @property
    def lang_dim(self) -> int:
        return self.lang_enc.dim

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] RGB 0-255 -> float32 [N, D]; any H, W (no resize)."""
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return self.convnet((x - self.mean) / self.std)

    def embed_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids [N, T] + mask [N, T] -> [N, 768], mean over the tokens whose mask is 1."""
        return self.lang_enc(input_ids, attention_mask)

    def reward(self, first: torch.Tensor, current: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
        """R3M's get_reward_le: head on precomputed embeddings -> [N] raw scores."""
        return self.lang_rew(first, current, instruction)


class ImageEncoder(nn.Module):
    """`R3MNet.embed_images` as a module of its own (what the ONNX image encoder is exported from)."""

    def __init__(self, net: R3MNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.embed_images(images)
