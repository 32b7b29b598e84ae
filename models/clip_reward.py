"""ZeST-style CLIP reward: r = (f(o_t) - f(o_0)) · (g(l) - g(l_0)), behind the `RewardModel` interface.

f and g are CLIP's L2-normalized image and text features (open_clip). The image term is how the scene
changed since the episode's first frame; the text term is the direction from a neutral description of the
scene (l_0, the *baseline prompt*) to the instruction. The reward is large when the scene moved the way the
instruction moves away from the baseline (ZeST, Cui et al. 2022; LAMP's CLIP baseline).

The baseline is its own prompt, encoded once at load time. LAMP's released CLIP path encodes the
instruction twice, so its text delta, and with it the reward, is always zero; keeping l_0 a separate,
configurable input is what makes this reward non-trivial.

Checkpoint directory (the layout of open_clip's Hugging Face repos, so their files can be dropped in as is):
  open_clip_config.json   {"model_cfg": {...}, "preprocess_cfg": {...}, "arch": "ViT-B-32"}  (arch optional)
  open_clip_model.safetensors  or  open_clip_pytorch_model.bin  (a plain state dict, loaded weights_only)
Nothing touches a model hub: the config and weights come from the directory, the BPE vocabulary of CLIP's
tokenizer ships inside the open_clip package, and models whose text side needs a Hugging Face tokenizer or
text tower are refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import open_clip
import safetensors.torch
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from lamp_ros.fileio import atomic_write_bytes, atomic_write_text
from lamp_ros.paths import data_dir
from models.reward_model import WeightsMissing, check_images, check_score_inputs

DEFAULT_ARCH = 'ViT-B-32'
CONFIG_FILE = 'open_clip_config.json'
SAFETENSORS_FILE = 'open_clip_model.safetensors'
# Weight file names of open_clip checkpoints, in open_clip's own order of preference (it loads the first
# present), so the file we name in messages is the file open_clip loads.
WEIGHTS_FILES = (SAFETENSORS_FILE, 'open_clip_pytorch_model.safetensors', 'open_clip_pytorch_model.bin')
# A task-neutral description of the scene: l_0 in the ZeST reward.
DEFAULT_BASELINE_PROMPT = 'a robot arm and objects on a table'
# Pretrained tags (open_clip's registry) named first in the "weights missing" message.
_PREFERRED_TAGS = ('laion2b_s34b_b79k', 'openai')

_INTERPOLATIONS = {'bicubic': InterpolationMode.BICUBIC, 'bilinear': InterpolationMode.BILINEAR,
                   'nearest': InterpolationMode.NEAREST}


@dataclass(frozen=True)
class ClipRewardConfig:
    baseline_prompt: str = DEFAULT_BASELINE_PROMPT   # l_0: what the scene looks like with no task done
    batch_size: int = 32                             # images per forward pass in embed_images


def default_checkpoint_dir(arch: str = DEFAULT_ARCH) -> Path:
    return data_dir() / 'weights' / 'clip' / arch


def download_hints(arch: str) -> list[str]:
    """Where official weights for `arch` can be downloaded by hand (from open_clip's offline registry)."""
    tags = open_clip.list_pretrained_tags_by_model(arch)
    tags = [t for t in _PREFERRED_TAGS if t in tags] + [t for t in tags if t not in _PREFERRED_TAGS]
    hints = []
    for tag in tags[:2]:
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        if cfg.get('hf_hub'):
            quick_gelu = ' (trained with QuickGELU: model_cfg must say "quick_gelu": true)' if cfg.get(
                'quick_gelu') else ''
            hints.append(f'{arch} {tag}: https://huggingface.co/{cfg["hf_hub"].rstrip("/")}/tree/main{quick_gelu}')
    if not hints:
        hints.append('open_clip checkpoints: https://huggingface.co/models?library=open_clip')
    return hints


def weights_missing_message(checkpoint_dir: Path, arch: str, problem: str) -> str:
    lines = [f'CLIP reward weights missing: {problem}.',
             f'Place an open_clip checkpoint in {checkpoint_dir}/:',
             f'  {checkpoint_dir / CONFIG_FILE}',
             f'  {checkpoint_dir / SAFETENSORS_FILE}   (or {" / ".join(WEIGHTS_FILES[1:])})',
             'Nothing is downloaded at run time. The files of an open_clip Hugging Face repo fit as they are; '
             'official weights can be downloaded by hand from:']
    lines += [f'  {hint}' for hint in download_hints(arch)]
    lines.append('or convert a loaded open_clip model with models.clip_reward.save_checkpoint.')
    return '\n'.join(lines)


def find_weights_file(checkpoint_dir: Path, arch: str = DEFAULT_ARCH) -> Path:
    """The weights file open_clip will load from `checkpoint_dir`; WeightsMissing says what to place where."""
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / CONFIG_FILE).is_file():
        raise WeightsMissing(weights_missing_message(checkpoint_dir, arch, f'no {checkpoint_dir / CONFIG_FILE}'))
    for name in WEIGHTS_FILES:
        if (checkpoint_dir / name).is_file():
            return checkpoint_dir / name
    raise WeightsMissing(weights_missing_message(
        checkpoint_dir, arch, f'{checkpoint_dir} has {CONFIG_FILE} but no weights file ({", ".join(WEIGHTS_FILES)})'))


def read_checkpoint_config(checkpoint_dir: Path) -> dict[str, Any]:
    """The checkpoint's open_clip_config.json, checked for what offline loading needs."""
    path = Path(checkpoint_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not valid JSON ({e})') from e
    if not isinstance(config, dict) or not isinstance(config.get('model_cfg'), dict):
        raise ValueError(f'{path}: expected {{"model_cfg": {{...}}, "preprocess_cfg": {{...}}}} '
                         '(the open_clip Hugging Face config format)')
    model_cfg = config['model_cfg']
    missing = [k for k in ('embed_dim', 'vision_cfg', 'text_cfg') if k not in model_cfg]
    if missing:
        raise ValueError(f'{path}: model_cfg lacks {missing}')
    hf_keys = [k for k in ('hf_tokenizer_name', 'hf_model_name') if model_cfg['text_cfg'].get(k)]
    if hf_keys:
        raise ValueError(f'{path}: text_cfg names a Hugging Face tokenizer/text model ({hf_keys}); these are '
                         'fetched from a model hub, which lamp_ros never does at run time. Use a CLIP model with '
                         "open_clip's built-in BPE tokenizer (e.g. ViT-B-32, ViT-B-16, ViT-L-14)")
    return config


def save_checkpoint(model: torch.nn.Module, model_cfg: dict[str, Any], checkpoint_dir: Path, arch: str) -> Path:
    """Write `model` in the layout `ClipReward.load` reads (safetensors weights, open_clip config), atomically.

    `model_cfg` is the open_clip model config the model was built from (e.g. open_clip.get_model_config(arch)).
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    preprocess = open_clip.get_model_preprocess_cfg(model)
    preprocess_cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in preprocess.items()
                      if k in ('mean', 'std', 'interpolation', 'resize_mode')}
    state = {k: v.detach().to('cpu').contiguous() for k, v in model.state_dict().items()}
    # Weights first: a directory whose config exists always has complete weights.
    atomic_write_bytes(checkpoint_dir / SAFETENSORS_FILE, safetensors.torch.save(state))
    config = {'arch': arch, 'model_cfg': model_cfg, 'preprocess_cfg': preprocess_cfg}
    atomic_write_text(checkpoint_dir / CONFIG_FILE, json.dumps(config, indent=2) + '\n')
    return checkpoint_dir


class ClipReward:
    """CLIP image/text embeddings and the ZeST reward on them (the `RewardModel` protocol)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], arch: str,
                 config: ClipRewardConfig = ClipRewardConfig(), device: str | torch.device = 'cpu') -> None:
        """Use `ClipReward.load`; this wraps an already loaded open_clip model and encodes the baseline prompt."""
        if config.batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {config.batch_size}')
        self.name = f'clip-{arch}'
        self.arch = arch
        self.config = config
        self.device = torch.device(device)
        self._model = model.to(self.device).eval().requires_grad_(False)
        self._tokenizer = tokenizer
        preprocess = open_clip.get_model_preprocess_cfg(model)
        size = preprocess['size']
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self._resize_mode = preprocess.get('resize_mode', 'shortest')
        if self._resize_mode not in ('shortest', 'squash'):
            raise ValueError(f"{arch}: preprocess resize_mode {self._resize_mode!r} is not supported "
                             "(only 'shortest' = resize + center crop, and 'squash')")
        interpolation = preprocess.get('interpolation', 'bicubic')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f'{arch}: preprocess interpolation {interpolation!r} is not one of '
                             f'{list(_INTERPOLATIONS)}')
        self._interpolation = _INTERPOLATIONS[interpolation]
        self._mean = torch.tensor(preprocess['mean'], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess['std'], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._baseline = self.embed_instructions([config.baseline_prompt])[0]

    @staticmethod
    def load(checkpoint_dir: str | Path, device: str | torch.device = 'cpu',
             config: ClipRewardConfig = ClipRewardConfig()) -> 'ClipReward':
        """Load an open_clip checkpoint directory (see the module docstring); never contacts a model hub."""
        checkpoint_dir = Path(checkpoint_dir).expanduser().resolve()
        arch = checkpoint_dir.name
        if (checkpoint_dir / CONFIG_FILE).is_file():
            checkpoint_config = read_checkpoint_config(checkpoint_dir)
            arch = str(checkpoint_config.get('arch', arch))
        find_weights_file(checkpoint_dir, arch)
        # open_clip's local-dir loader: config + preprocess from the json, weights from the preferred file,
        # strict key check, torch.load(weights_only=True) for .bin (pickled code is refused).
        model = open_clip.create_model(f'local-dir:{checkpoint_dir}', device=device, require_pretrained=True,
                                       weights_only=True)
        tokenizer = open_clip.get_tokenizer(f'local-dir:{checkpoint_dir}')
        return ClipReward(model, tokenizer, arch, config, device)

    @property
    def baseline_prompt(self) -> str:
        return self.config.baseline_prompt

    @property
    def baseline_embedding(self) -> np.ndarray:
        """g(l_0), float32 [D]: the text embedding of the baseline prompt (a copy)."""
        return self._baseline.copy()

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP's eval transform on a uint8 [B, 3, H, W] batch: resize (on uint8, as PIL does), crop, normalize."""
        height, width = self.image_size
        if self._resize_mode == 'squash':
            images = TF.resize(images, [height, width], interpolation=self._interpolation, antialias=True)
        else:
            if height == width:   # torchvision's rule: shorter side -> size, longer side scaled and truncated
                images = TF.resize(images, height, interpolation=self._interpolation, antialias=True)
            else:                 # open_clip's ResizeKeepRatio: the side that fits the target tightest
                ratio = min(images.shape[-2] / height, images.shape[-1] / width)
                images = TF.resize(images, [round(images.shape[-2] / ratio), round(images.shape[-1] / ratio)],
                                   interpolation=self._interpolation, antialias=True)
            images = TF.center_crop(images, [height, width])
        return (images.to(torch.float32) / 255.0 - self._mean) / self._std

    @torch.inference_mode()
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB frames, any size -> float32 [N, D], L2-normalized CLIP image features."""
        check_images(images)
        out = []
        for start in range(0, len(images), self.config.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.config.batch_size]))
            batch = self._preprocess(batch.to(self.device).permute(0, 3, 1, 2))
            out.append(self._model.encode_image(batch, normalize=True).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.embedding_dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    @torch.inference_mode()
    def embed_instructions(self, instructions: list[str]) -> np.ndarray:
        """Instructions -> float32 [N, D], L2-normalized CLIP text features (text past the context is cut)."""
        if isinstance(instructions, str) or not all(isinstance(s, str) for s in instructions):
            raise ValueError(f'instructions must be a list of str, got {instructions!r}')
        if not instructions:
            return np.zeros((0, self.embedding_dim), np.float32)
        tokens = self._tokenizer(list(instructions)).to(self.device)
        return self._model.encode_text(tokens, normalize=True).float().cpu().numpy().astype(np.float32, copy=False)

    @property
    def embedding_dim(self) -> int:
        return int(self._baseline.shape[0])

    def score(self, first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
        """ZeST reward (f(o_t) - f(o_0)) · (g(l) - g(l_0)) from precomputed embeddings -> float32 [N].

        first, current: [N or 1, D] image embeddings; instruction: [N or 1, D] text embeddings; rows broadcast.
        """
        dim = self._baseline.shape[0]
        check_score_inputs(first, current, instruction, dim, dim)
        image_delta = current.astype(np.float32) - first.astype(np.float32)
        text_delta = instruction.astype(np.float32) - self._baseline
        return np.einsum('nd,nd->n', *np.broadcast_arrays(image_delta, text_delta)).astype(np.float32)
