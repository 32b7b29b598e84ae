"""R3M reward on onnxruntime (numpy + onnxruntime + tokenizers; no torch): the reward node's model on the robot.

An export directory (written by models.r3m.onnx_export, checked against torch there):

    DIR/
      manifest.json        format, source checkpoint name, dims, max_text_tokens, sha256 of every file
      image_encoder.onnx   image uint8 [N, H, W, 3] (RGB 0-255, any H, W) -> embedding float32 [N, D]
                           (ImageNet normalization inside the graph)
      reward_head.onnx     first [N|1, D], current [N|1, D], instruction [N|1, L] float32 -> reward float32 [N]
      text_encoder.onnx    input_ids, attention_mask int64 [1, T] -> embedding float32 [1, L]
      vocab.txt            BERT uncased vocabulary

The text encoder is exported rather than a fixed list of instruction embeddings: the operator can publish any
instruction on the `instruction` topic, and encoding one costs tens of milliseconds, once per instruction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.bundle import sha256_file
from models.r3m.layout import MIN_IMAGE_SIDE, default_checkpoint_dir, size_from_dir, weights_missing_message
from models.r3m.text import R3MTokenizer
from models.reward_model import WeightsMissing, check_images, check_score_inputs
from models.runtime import session_options

FORMAT = 'lamp_ros.r3m_onnx'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
IMAGE_ENCODER_FILE, HEAD_FILE, TEXT_ENCODER_FILE, VOCAB_FILE = (
    'image_encoder.onnx', 'reward_head.onnx', 'text_encoder.onnx', 'vocab.txt')
ONNX_FILES = (IMAGE_ENCODER_FILE, HEAD_FILE, TEXT_ENCODER_FILE, VOCAB_FILE)
IMAGE_INPUT, IMAGE_OUTPUT = 'image', 'embedding'
HEAD_INPUTS, HEAD_OUTPUT = ('first', 'current', 'instruction'), 'reward'
TEXT_INPUTS, TEXT_OUTPUT = ('input_ids', 'attention_mask'), 'embedding'


class OnnxExportInvalid(ValueError):
    """An export directory that must not be used (malformed manifest, edited or missing file)."""


@dataclass(frozen=True)
class OnnxManifest:
    name: str               # the source R3MReward's name (weights identity)
    size: int               # ResNet depth
    image_dim: int
    lang_dim: int
    max_text_tokens: int
    files: dict[str, str]   # file -> sha256
    verification: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {'format': FORMAT, 'version': FORMAT_VERSION, 'name': self.name, 'size': self.size,
                'image_dim': self.image_dim, 'lang_dim': self.lang_dim, 'max_text_tokens': self.max_text_tokens,
                'files': self.files, 'verification': self.verification}

    @staticmethod
    def read(root: Path) -> 'OnnxManifest':
        path = root / MANIFEST
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get('format') != FORMAT or data.get('version') != FORMAT_VERSION:
            raise OnnxExportInvalid(f'{path}: not a {FORMAT} version {FORMAT_VERSION} manifest')
        fields = ('name', 'size', 'image_dim', 'lang_dim', 'max_text_tokens', 'files', 'verification')
        missing = [k for k in fields if k not in data]
        if missing:
            raise OnnxExportInvalid(f'{path}: lacks {missing}')
        return OnnxManifest(**{k: data[k] for k in fields})


def onnx_missing_message(export_dir: Path, problem: str) -> str:
    size = size_from_dir(export_dir.with_name(export_dir.name.removesuffix('_onnx')))
    checkpoint = default_checkpoint_dir(size)
    return '\n'.join([
        f'R3M ONNX reward model missing: {problem}.',
        f'Make it on a machine with torch: lamp-models export-onnx --checkpoint {checkpoint} --out {export_dir}',
        'and copy the directory here. It is made from the R3M checkpoint:',
        weights_missing_message(checkpoint, 'needed for the export', size)])


class OnnxR3MReward:
    """The `RewardModel` protocol on onnxruntime; same numbers as R3MReward (checked at export)."""

    def __init__(self, root: Path, manifest: OnnxManifest, threads: int, image_batch: int = 16) -> None:
        """Use `OnnxR3MReward.load`."""
        if image_batch < 1:
            raise ValueError(f'image_batch must be >= 1, got {image_batch}')
        self.root = root
        self.manifest = manifest
        self.name = manifest.name
        self.image_batch = image_batch
        options = session_options(threads)
        providers = ['CPUExecutionProvider']
        self._image = ort.InferenceSession(str(root / IMAGE_ENCODER_FILE), options, providers=providers)
        self._head = ort.InferenceSession(str(root / HEAD_FILE), options, providers=providers)
        self._text = ort.InferenceSession(str(root / TEXT_ENCODER_FILE), options, providers=providers)
        self.tokenizer = R3MTokenizer(root / VOCAB_FILE, manifest.max_text_tokens)

    @staticmethod
    def load(export_dir: str | Path, threads: int = 1, verify_files: bool = True) -> 'OnnxR3MReward':
        """Open an export directory; WeightsMissing (with how to make it) if absent, OnnxExportInvalid if bad."""
        root = Path(export_dir).expanduser()
        if not (root / MANIFEST).is_file():
            raise WeightsMissing(onnx_missing_message(root, f'no {root / MANIFEST}'))
        manifest = OnnxManifest.read(root)
        for name in ONNX_FILES:
            if name not in manifest.files or not (root / name).is_file():
                raise OnnxExportInvalid(f'{root}: {name} missing (from the directory or its manifest)')
            if verify_files and sha256_file(root / name) != manifest.files[name]:
                raise OnnxExportInvalid(f'{root}: {name} does not match its sha256 in the manifest (corrupt or edited)')
        return OnnxR3MReward(root, manifest, threads)

    @property
    def image_dim(self) -> int:
        return self.manifest.image_dim

    @property
    def lang_dim(self) -> int:
        return self.manifest.lang_dim

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB frames at the size given -> float32 [N, D]."""
        check_images(images, MIN_IMAGE_SIDE)
        out = np.empty((len(images), self.image_dim), np.float32)
        for start in range(0, len(images), self.image_batch):
            batch = np.ascontiguousarray(images[start:start + self.image_batch])
            (out[start:start + len(batch)],) = self._image.run([IMAGE_OUTPUT], {IMAGE_INPUT: batch})
        return out

    def embed_instructions(self, instructions: list[str]) -> np.ndarray:
        """N instructions -> float32 [N, L] (one text-encoder run each)."""
        ids, mask = self.tokenizer.encode(instructions)
        out = np.empty((len(ids), self.lang_dim), np.float32)
        for row in range(len(ids)):
            (embedding,) = self._text.run([TEXT_OUTPUT], {TEXT_INPUTS[0]: ids[row:row + 1],
                                                          TEXT_INPUTS[1]: mask[row:row + 1]})
            out[row] = embedding[0]
        return out

    def score(self, first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
        """Head on precomputed embeddings: first [N|1, D], current [N|1, D], instruction [N|1, L] -> float32 [N]."""
        n = check_score_inputs(first, current, instruction, self.image_dim, self.lang_dim)
        if n == 0:
            return np.zeros(0, np.float32)
        feeds = {name: np.ascontiguousarray(a, dtype=np.float32)
                 for name, a in zip(HEAD_INPUTS, (first, current, instruction))}
        (reward,) = self._head.run([HEAD_OUTPUT], feeds)
        return np.broadcast_to(reward.reshape(-1), (n,)).astype(np.float32)
