"""R3M language reward behind the `RewardModel` interface (torch, CPU or GPU).

r_t = MLP([e(o_0), e(o_t), l]): e embeds each frame once (`embed_images`), l each instruction once
(`embed_instructions`), and `score` runs only the head on precomputed embeddings, like the r3m_lamp fork's
`get_reward_le`. Scores are the head's raw output, as LAMP uses them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.bundle import sha256_file
from models.r3m.checkpoint import load_net
from models.r3m.layout import MIN_IMAGE_SIDE, MODEL_FILE, VOCAB_FILE, require_checkpoint_files
from models.r3m.model import R3MNet
from models.r3m.text import DEFAULT_MAX_TOKENS, R3MTokenizer
from models.reward_model import check_images, check_score_inputs


@dataclass(frozen=True)
class R3MRewardConfig:
    image_batch: int = 32                       # frames per convnet forward in embed_images
    max_text_tokens: int = DEFAULT_MAX_TOKENS   # longest instruction, [CLS] and [SEP] included


class R3MReward:
    """R3M's image embedding, sentence embedding and language-reward head (the `RewardModel` protocol)."""

    def __init__(self, net: R3MNet, vocab_path: str | Path, config: R3MRewardConfig = R3MRewardConfig(),
                 device: str | torch.device = 'cpu', name: str | None = None) -> None:
        """Wrap a built R3MNet; `R3MReward.load` reads one from a checkpoint directory.

        The net is moved to `device` and put in eval mode with gradients off (a trainer wraps its own copy).
        `name` identifies the weights (embedding caches are keyed by it); default 'r3m-resnet<size>'.
        """
        if config.image_batch < 1:
            raise ValueError(f'image_batch must be >= 1, got {config.image_batch}')
        self.config = config
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.vocab_path = Path(vocab_path)
        self.tokenizer = R3MTokenizer(vocab_path, config.max_text_tokens)
        if self.tokenizer.vocab_size > net.lang_enc.vocab_size:
            raise ValueError(f'{vocab_path}: {self.tokenizer.vocab_size} tokens, but the DistilBERT has only '
                             f'{net.lang_enc.vocab_size} token embeddings')
        max_positions = net.lang_enc.bert.config.max_position_embeddings
        if config.max_text_tokens > max_positions:
            raise ValueError(f'max_text_tokens {config.max_text_tokens} > DistilBERT positions {max_positions}')
        self.name = name or f'r3m-resnet{net.config.size}'

    @staticmethod
    def load(checkpoint_dir: str | Path, device: str | torch.device = 'cpu',
             config: R3MRewardConfig = R3MRewardConfig()) -> 'R3MReward':
        """Load an official-layout checkpoint directory; WeightsMissing says what to place where if absent.

        The name carries the first 12 hex digits of model.pt's sha256, so caches never mix checkpoints."""
        root = require_checkpoint_files(Path(checkpoint_dir))
        net = load_net(root, device)
        digest = sha256_file(root / MODEL_FILE)[:12]
        return R3MReward(net, root / VOCAB_FILE, config, device, name=f'r3m-resnet{net.config.size}@{digest}')

    @property
    def image_dim(self) -> int:
        return self.net.image_dim

    @property
    def lang_dim(self) -> int:
        return self.net.lang_dim

    @torch.inference_mode()
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB frames at the size given (no resize) -> float32 [N, D]."""
        check_images(images, MIN_IMAGE_SIDE)
        out = np.empty((len(images), self.image_dim), np.float32)
        for start in range(0, len(images), self.config.image_batch):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.config.image_batch]))
            out[start:start + len(batch)] = self.net.embed_images(batch.to(self.device)).float().cpu().numpy()
        return out

    @torch.inference_mode()
    def embed_instructions(self, instructions: list[str]) -> np.ndarray:
        """N instructions -> float32 [N, 768]: DistilBERT's last hidden state averaged over each one's tokens."""
        ids, mask = self.tokenizer.encode(instructions)
        if not len(ids):
            return np.zeros((0, self.lang_dim), np.float32)
        length = int(mask.sum(axis=1).max())     # padding columns no row uses change nothing (masked mean): drop them
        ids, mask = ids[:, :length], mask[:, :length]
        embedding = self.net.embed_tokens(torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device))
        return embedding.float().cpu().numpy()

    @torch.inference_mode()
    def score(self, first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
        """Head on precomputed embeddings: first [N|1, D], current [N|1, D], instruction [N|1, 768] -> float32 [N]."""
        n = check_score_inputs(first, current, instruction, self.image_dim, self.lang_dim)
        if n == 0:
            return np.zeros(0, np.float32)
        tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
                   for a in (first, current, instruction)]
        reward = self.net.reward(*tensors).float().cpu().numpy()
        return np.broadcast_to(reward, (n,)).astype(np.float32)
