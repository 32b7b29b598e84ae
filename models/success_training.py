"""Train the binary success classifier (models/success_classifier.py) from recorded episodes (models/episodes.py):
`lamp-models train-classifier`. Workstation only (torch).

Labels, as HIL-SERL takes them from a person's clicks, here from the episode files: the last
`positive_frames` frames of a successful episode (recorded episodes stop a few steps after success) are
positives; the `margin_frames` before them are left out (the moment of success is ambiguous to the eye);
every other frame, and every frame of a failed episode, is a negative. Episodes are split into training and
held-out ones (never frames of one episode on both sides); batches are class-balanced, frames randomly
shifted (DrQ's augmentation).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from lamp_ros.fileio import atomic_write_text
from models.augment import random_offsets, random_shift
from models.episodes import Episode
from models.success_classifier import (INPUT, MANIFEST_FILE, ONNX_FILE, OUTPUT, ClassifierManifest, SuccessClassifier,
                                       square_resized)
from models.torch_onnx import onnx_export


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 64
    positive_frames: int = 3
    margin_frames: int = 3
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    holdout: float = 0.2            # share of episodes held out for the report
    threshold: float = 0.5
    augment_pad: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 16 or self.positive_frames < 1 or self.margin_frames < 0 or self.steps < 1:
            raise ValueError(f'image_size >= 16, positive_frames >= 1, margin_frames >= 0 and steps >= 1; got '
                             f'{self.image_size}, {self.positive_frames}, {self.margin_frames}, {self.steps}')
        if not 0.0 <= self.holdout < 1.0 or not 0.0 < self.threshold < 1.0:
            raise ValueError(f'holdout {self.holdout} must be in [0, 1), threshold {self.threshold} in (0, 1)')


@dataclass
class LabelledFrames:
    frames: np.ndarray              # uint8 [N, S, S, 3]
    labels: np.ndarray              # float32 [N], 1 = success
    episode: np.ndarray             # int [N], which episode a frame came from
    tasks: list[str]


def labelled_frames(episodes: Iterable[tuple[str, Episode]], config: ClassifierConfig) -> LabelledFrames:
    frames, labels, owners, tasks = [], [], [], set()
    for index, (_, episode) in enumerate(episodes):
        video = square_resized(episode.image_front, config.image_size)
        t = len(video)
        label = np.zeros(t, np.float32)
        keep = np.ones(t, bool)
        if episode.success:
            label[max(0, t - config.positive_frames):] = 1.0
            keep[max(0, t - config.positive_frames - config.margin_frames):max(0, t - config.positive_frames)] = False
        frames.append(video[keep])
        labels.append(label[keep])
        owners.append(np.full(int(keep.sum()), index))
        tasks.add(episode.task or episode.instruction)
    if not frames:
        raise ValueError('no episodes to train on')
    out = LabelledFrames(np.concatenate(frames), np.concatenate(labels), np.concatenate(owners), sorted(tasks))
    if out.labels.min() == out.labels.max():
        raise ValueError(f'all {len(out.labels)} frames are {"positives" if out.labels[0] else "negatives"}: '
                         'a classifier needs successful and unsuccessful episodes or frames')
    return out


class ClassifierNet(nn.Module):
    """uint8 [N, S, S, 3] -> success probability [N]: 3x3 convs, global average pool, one linear layer."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 32, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0 - 0.5
        return self.head(self.convs(x).mean(dim=(2, 3))).squeeze(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(images))


def split_episodes(data: LabelledFrames, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (train, held out), whole episodes on one side."""
    episodes = np.unique(data.episode)
    held = np.random.default_rng(seed).permutation(episodes)[:int(round(holdout * len(episodes)))]
    held_rows = np.isin(data.episode, held)
    return ~held_rows, held_rows


def train_classifier(data: LabelledFrames, config: ClassifierConfig, progress: bool = True
                     ) -> tuple[ClassifierNet, dict]:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_rows, held_rows = split_episodes(data, config.holdout, config.seed)
    positives = np.flatnonzero(train_rows & (data.labels > 0.5))
    negatives = np.flatnonzero(train_rows & (data.labels < 0.5))
    if not len(positives) or not len(negatives):
        raise ValueError(f'the training episodes hold {len(positives)} positive and {len(negatives)} negative '
                         'frames; both are needed (record more episodes, or lower --holdout)')
    net = ClassifierNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    half = config.batch_size // 2
    for _ in tqdm(range(config.steps), desc='train classifier', unit='step', disable=not progress):
        rows = np.concatenate([rng.choice(positives, half), rng.choice(negatives, config.batch_size - half)])
        images = torch.from_numpy(random_shift(data.frames[rows], config.augment_pad,
                                                       random_offsets(len(rows), config.augment_pad, rng)))
        loss = F.binary_cross_entropy_with_logits(net.logits(images), torch.from_numpy(data.labels[rows]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    report = {'config': asdict(config), 'frames': int(len(data.labels)), 'positives': int(data.labels.sum()),
              'train': _scores(net, data, train_rows, config.threshold),
              'held_out': _scores(net, data, held_rows, config.threshold) if held_rows.any() else None}
    return net, report


@torch.no_grad()
def _scores(net: ClassifierNet, data: LabelledFrames, rows: np.ndarray, threshold: float) -> dict:
    """Accuracy, precision and recall at the threshold over the rows' frames."""
    index = np.flatnonzero(rows)
    probs = np.concatenate([net(torch.from_numpy(data.frames[index[i:i + 256]])).numpy()
                            for i in range(0, len(index), 256)])
    truth, said = data.labels[index] > 0.5, probs >= threshold
    hits = int((truth & said).sum())
    return {'frames': int(len(index)), 'episodes': int(len(np.unique(data.episode[index]))),
            'accuracy': float((truth == said).mean()), 'precision': hits / max(int(said.sum()), 1),
            'recall': hits / max(int(truth.sum()), 1)}


def export_classifier(net: ClassifierNet, out: Path, config: ClassifierConfig, tasks: list[str], report: dict,
                      name: str) -> SuccessClassifier:
    """classifier.onnx + classifier.json, checked in onnxruntime against torch; returns the loaded classifier."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = config.image_size
    example = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    onnx_export(net, (example,), out / ONNX_FILE, [INPUT], [OUTPUT], {INPUT: {0: 'batch'}, OUTPUT: {0: 'batch'}})
    manifest = ClassifierManifest(size, config.threshold, tuple(tasks), name)
    atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest.to_json(report), indent=1) + '\n')
    loaded = SuccessClassifier.load(out)
    with torch.no_grad():
        expected = net(example).numpy()
    difference = float(np.abs(loaded.probabilities(example.numpy()) - expected).max())
    if difference > 1e-4:
        raise RuntimeError(f'{out / ONNX_FILE}: onnxruntime differs from torch by {difference:.2g}')
    return loaded

