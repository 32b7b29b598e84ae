"""In-domain finetuning of the R3M language reward on labeled videos (the r3m_lamp fork's finetuning flags).

R3M's language objective (facebookresearch/r3m r3m/trainer.py, ademiadeniji/r3m_lamp r3m/trainer.py and
r3m/utils/data_loaders.py): per video, five frames are drawn, a start a in the first alpha = 20%, an end g in
the last 20%, and s0 < s1 < s2 anywhere; G(e_a, e_t, l) is an InfoNCE logit (raw head output, no temperature)
that must beat, for t = g, s1, s2 in turn, (i) the same video one step back (e_a, then e_s0, then e_s1: the
reward rises with progress) and (ii) num_negatives = 3 other videos scored with this video's instruction
(r3m_lamp's split_batch draws those from the other task's half of the batch). The three InfoNCE losses are
averaged; Adam, lr 1e-4. With the convnet trained, R3M adds its within-video TCN loss (weight 1) and L1/L2
penalties on the embeddings (1e-5 each); DistilBERT stays frozen (R3M encodes language under no_grad).

What this module changes, and why:
- (iii) language negatives: the same frames (e_a, e_t) under instructions of other tasks, as many as
  `language_negatives`: LAMP relabels one video with many instructions, so the score must rank instructions
  for the same frames; R3M only ranks videos for one instruction.
- Other-video negatives are drawn from the batch's episodes of *another* task (r3m_lamp's split_batch,
  generalized to any number of tasks), never from the row itself or a paraphrase of the same task, which
  would be a false negative (R3M's randperm can pick the video itself).
- s2 > s1 strictly (R3M allows s2 == s1, which makes a positive equal to its negative).
- The loss is the same InfoNCE, computed with logsumexp (R3M's exp() of raw logits can overflow; its epsilons
  are dropped). No image augmentation (R3M random-resized-crops): frozen layers are embedded once per frame and
  cached, which is what makes training cheap on a CPU; only the head (and, optionally, the last ResNet stage on
  cached layer3 features) runs per step.
- Starting from random weights (no pretrained R3M/ImageNet weights on this machine), the ResNet's batch-norm
  statistics are first estimated on the training frames (their running means/variances are part of the
  checkpoint), so the frozen random features are normalized for this domain.

Episodes come from models.episodes (a directory of .npz files). Episodes are split into train and held-out
per task; the report ranks, on held-out episodes, the true instruction against other tasks' instructions and
later frames against earlier ones.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.episodes import Episode
from models.r3m.model import R3MNet
from models.reward_model import RewardModel


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 2000
    batch_size: int = 16              # videos per step (R3M's bs)
    lr: float = 1e-4                  # R3M's
    alpha: float = 0.2                # R3M's start/end window, as a fraction of the video
    video_negatives: int = 3          # R3M's num_negatives: other videos, this instruction
    language_negatives: int = 3       # ours: these frames, other tasks' instructions
    holdout: float = 0.2              # fraction of each task's episodes held out for the report
    train_last_stage: bool = False    # also train ResNet layer4 (on cached layer3 features)
    reset_head: bool = False          # re-initialize the head first (r3m_lamp's finetune_lang_reward)
    tcn_weight: float = 1.0           # R3M's, with train_last_stage only (frozen embeddings make it constant)
    l1_weight: float = 1e-5           # R3M's embedding penalties, with train_last_stage only
    l2_weight: float = 1e-5
    max_frames: int = 64              # frames kept per episode, evenly spaced (first and last always)
    include_failures: bool = False    # train on unsuccessful episodes too
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ('steps', 'batch_size', 'max_frames'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.batch_size < 2:
            raise ValueError(f'batch_size must be >= 2 (other videos are the negatives), got {self.batch_size}')
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f'holdout must be in [0, 1), got {self.holdout}')
        if not 0.0 < self.alpha <= 0.5:
            raise ValueError(f'alpha must be in (0, 0.5], got {self.alpha}')
        if self.max_frames < 3:
            raise ValueError(f'max_frames must be >= 3 (start, middle, end), got {self.max_frames}')
        if self.video_negatives < 0 or self.language_negatives < 0:
            raise ValueError('negative counts must be >= 0')


@dataclass(frozen=True)
class Video:
    """One episode as the trainer sees it: its kept frames and its instruction."""
    episode_id: str
    frames: np.ndarray      # uint8 [K, H, W, 3], K <= max_frames, first and last frame of the episode included
    instruction: str
    label: str              # task (or the instruction itself): instructions with one label are equivalent


RANKING_NAMES = ('instruction_pairwise', 'instruction_top1', 'progress_pairwise', 'end_beats_start')


@dataclass(frozen=True)
class Ranking:
    """Held-out ranking accuracies; each is a fraction of comparisons won, with the count and chance level."""
    instruction_pairwise: float     # end frame: true instruction > one other task's instruction
    instruction_top1: float         # end frame: true instruction > every other task's instruction
    progress_pairwise: float        # later frame > earlier frame (at least alpha of the video apart), true instruction
    end_beats_start: float          # last frame > first frame, true instruction
    comparisons: dict[str, int] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f'{name:22s} {getattr(self, name):6.1%}  (chance {self.chance[name]:5.1%}, n={self.comparisons[name]})'
                for name in RANKING_NAMES]


@dataclass(frozen=True)
class FinetuneResult:
    net: R3MNet
    train_ids: list[str]
    holdout_ids: list[str]
    before: Ranking | None          # held-out ranking of the starting model (None without held-out episodes)
    after: Ranking | None           # ... and of the finetuned model
    train_after: Ranking            # training episodes, finetuned model
    losses: list[float]             # per step
    config: FinetuneConfig

    def summary(self) -> dict:
        return {'config': asdict(self.config), 'train_episodes': len(self.train_ids),
                'holdout_episodes': len(self.holdout_ids),
                'holdout_before': asdict(self.before) if self.before else None,
                'holdout_after': asdict(self.after) if self.after else None,
                'train_after': asdict(self.train_after),
                'final_loss': float(np.mean(self.losses[-50:])) if self.losses else None}


# --- data ------------------------------------------------------------------------------------------------------
def kept_frames(length: int, max_frames: int) -> np.ndarray:
    """Evenly spaced frame indices, first and last included."""
    return np.unique(np.round(np.linspace(0, length - 1, min(length, max_frames))).astype(int))


def videos_from_episodes(episodes: Iterable[tuple[str, Episode]], config: FinetuneConfig) -> tuple[list[Video], int]:
    """The usable episodes (3+ frames; successful unless include_failures), and how many were left out."""
    videos, left_out = [], 0
    for episode_id, episode in episodes:
        if (not episode.success and not config.include_failures) or episode.length < 3:
            left_out += 1
            continue
        index = kept_frames(episode.length, config.max_frames)
        videos.append(Video(episode_id, np.ascontiguousarray(episode.image_front[index]), episode.instruction,
                            episode.label))
    return videos, left_out


def check_one_size(videos: Sequence[Video]) -> None:
    """One frame size for all: layer3 features of different sizes do not batch, and o_0 vs o_t must match."""
    sizes = sorted({v.frames.shape[1:3] for v in videos})
    if len(sizes) > 1:
        raise ValueError(f'episodes have frames of different sizes {sizes}: record (or resize) them at one size')


def split_holdout(videos: Sequence[Video], holdout: float, seed: int) -> tuple[list[Video], list[Video]]:
    """Per task label: a random `holdout` fraction held out, at least one episode kept for training."""
    rng = np.random.default_rng([seed, 1])
    train, held = [], []
    for label in sorted({v.label for v in videos}):
        group = [v for v in videos if v.label == label]
        order = rng.permutation(len(group))
        n_held = min(int(round(holdout * len(group))), len(group) - 1)
        held += [group[i] for i in order[:n_held]]
        train += [group[i] for i in order[n_held:]]
    return train, held


class Vocabulary:
    """Distinct instructions, their task labels, and which instructions may serve as another's negative."""

    def __init__(self, videos: Sequence[Video]) -> None:
        pairs = sorted({(v.instruction, v.label) for v in videos})
        self.texts = [text for text, _ in pairs]
        labels = [label for _, label in pairs]
        duplicated = sorted({t for t in self.texts if self.texts.count(t) > 1})
        if duplicated:
            raise ValueError(f'instructions labeled with two different tasks: {duplicated[:5]}')
        self.label_names = sorted(set(labels))
        if len(self.label_names) < 2:
            raise ValueError(f'all episodes are one task ({self.label_names}): the language objective needs at '
                             'least two tasks (instructions that are not paraphrases of each other)')
        self.text_label = np.array([self.label_names.index(label) for label in labels])
        self.index = {text: i for i, text in enumerate(self.texts)}
        self.others = [np.flatnonzero(self.text_label != g) for g in range(len(self.label_names))]

    def label_of(self, video: Video) -> int:
        return self.label_names.index(video.label)


# --- the trainable part ------------------------------------------------------------------------------------
@torch.no_grad()
def calibrate_batchnorm(net: R3MNet, frames: np.ndarray, batch: int = 32) -> None:
    """Estimate every BatchNorm's running mean/variance on `frames` (AdaBN): random-init ResNets have none."""
    norms = [m for m in net.convnet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                        # cumulative average over all batches
    net.convnet.train()
    for start in range(0, len(frames), batch):
        net.embed_images(torch.from_numpy(frames[start:start + batch]).to(net.mean.device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


def trunk(net: R3MNet, images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> the input of the last ResNet stage (layer3's output), as R3MNet.embed_images does."""
    c = net.convnet
    x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    x = (x - net.mean) / net.std
    x = c.maxpool(c.relu(c.bn1(c.conv1(x))))
    return c.layer3(c.layer2(c.layer1(x)))


def last_stage(net: R3MNet, features: torch.Tensor) -> torch.Tensor:
    c = net.convnet
    return torch.flatten(c.avgpool(c.layer4(features)), 1)


@torch.no_grad()
def frozen_features(net: R3MNet, frames: np.ndarray, train_last_stage: bool, batch: int = 32) -> torch.Tensor:
    """What the frozen layers make of each frame, computed once: the embedding, or layer3's output."""
    device = net.mean.device
    out = []
    for start in range(0, len(frames), batch):
        images = torch.from_numpy(frames[start:start + batch]).to(device)
        out.append(trunk(net, images) if train_last_stage else net.embed_images(images))
    return torch.cat(out)


# --- the objective -------------------------------------------------------------------------------------------
def sample_positions(lengths: np.ndarray, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """R3M's data loader, 0-based: a in the first alpha, g in the last alpha, s0 < s1 < s2 (we need K >= 3)."""
    k = lengths
    a = rng.integers(0, np.floor(alpha * (k - 1)).astype(int) + 1)
    g = rng.integers(np.ceil((1 - alpha) * (k - 1)).astype(int), k)
    s1 = rng.integers(1, k - 1)
    s0 = rng.integers(0, s1)
    s2 = rng.integers(s1 + 1, k)
    return np.stack([a, g, s0, s1, s2], axis=1)


def other_rows(labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each row, `count` random batch rows of another task (index, valid mask: False where none exists)."""
    b = len(labels)
    rows = np.zeros((b, count), int)
    valid = np.zeros((b, count), bool)
    for i in range(b):
        candidates = np.flatnonzero(labels != labels[i])
        if len(candidates):
            rows[i] = rng.choice(candidates, count)
            valid[i] = True
    return rows, valid


def info_nce(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """-log softmax of column 0 over the valid columns (R3M's InfoNCE with the positive first)."""
    masked = logits.masked_fill(~valid, float('-inf'))
    return torch.logsumexp(masked, dim=-1) - logits[..., 0]


def tcn_loss(e: torch.Tensor, negatives: int, rng: np.random.Generator) -> torch.Tensor:
    """R3M's within-video time-contrastive loss on e [B, 5, D] (-L2 distance as similarity)."""
    s0, s1, s2 = e[:, 2], e[:, 3], e[:, 4]
    b = len(e)

    def sim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -torch.linalg.norm(x - y, dim=-1)

    shifts = [int(rng.integers(1, b)) for _ in range(negatives)]     # other rows only (a rotation of the batch)
    neg2 = [sim(s2, s2.roll(k, 0)) for k in shifts]
    neg0 = [sim(s0, s0.roll(k, 0)) for k in shifts]
    s_0_2, s_1_2, s_0_1 = sim(s2, s0), sim(s2, s1), sim(s1, s0)
    loss1 = torch.logsumexp(torch.stack([s_1_2, s_0_2, *neg2], -1), -1) - s_1_2
    loss2 = torch.logsumexp(torch.stack([s_0_1, s_0_2, *neg0], -1), -1) - s_0_1
    return ((loss1 + loss2) / 2).mean()


class Objective:
    """R3M's language loss (+ language negatives) on cached frozen features; returns (loss, accuracy)."""

    def __init__(self, net: R3MNet, features: list[torch.Tensor], labels: np.ndarray, text_index: np.ndarray,
                 lang: torch.Tensor, vocab: Vocabulary, config: FinetuneConfig) -> None:
        self.net, self.features, self.labels, self.text_index = net, features, labels, text_index
        self.lang, self.vocab, self.config = lang, vocab, config
        self.lengths = np.array([len(f) for f in features])

    def __call__(self, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        c = self.config
        rows = rng.integers(0, len(self.features), c.batch_size)
        positions = sample_positions(self.lengths[rows], c.alpha, rng)
        stacked = torch.stack([self.features[r][positions[i]] for i, r in enumerate(rows)])  # [B, 5, ...]
        flat = stacked.flatten(0, 1)
        embedded = last_stage(self.net, flat) if c.train_last_stage else flat                # [B*5, D], row 5i+slot
        first, current, text, valid = self.columns(rows, rng)                                # each [B, 3, C]
        logits = self.net.lang_rew(embedded[first.ravel()], embedded[current.ravel()],
                                   self.lang[text.ravel()]).view(first.shape)
        mask = torch.from_numpy(valid).to(logits.device)
        loss = info_nce(logits, mask).mean()
        if c.train_last_stage:
            e = embedded.view(len(rows), 5, -1)
            loss = loss + c.tcn_weight * tcn_loss(e, c.video_negatives or 1, rng) \
                + c.l2_weight * torch.linalg.norm(e, ord=2, dim=-1).mean() \
                + c.l1_weight * torch.linalg.norm(e, ord=1, dim=-1).mean()
        negatives = logits.masked_fill(~mask, float('-inf'))[..., 1:].max(-1).values
        accuracy = float((logits[..., 0] > negatives).float().mean())
        return loss, accuracy

    def columns(self, rows: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Which (first frame, current frame, instruction) each logit scores, as indices into the batch's
        embedded frames (row 5i + slot; slots a, g, s0, s1, s2) and the instructions; positive first.

        For R3M's positives (a, g), (a, s1), (a, s2) of video i: its step back (a, a), (a, s0), (a, s1); other
        videos j (another task) with i's instruction; the same frames with other tasks' instructions."""
        c = self.config
        b = len(rows)
        columns = 2 + c.video_negatives + c.language_negatives
        first = np.empty((b, 3, columns), np.int64)
        current = np.empty_like(first)
        text = np.empty_like(first)
        valid = np.ones(first.shape, bool)
        own = 5 * np.arange(b)
        texts = self.text_index[rows]
        other, has_other = other_rows(self.labels[rows], 3 * c.video_negatives, rng)
        for p, (t, back) in enumerate(((1, 0), (3, 2), (4, 3))):
            first[:, p, :2], current[:, p, 0], current[:, p, 1], text[:, p, :2] = \
                own[:, None], own + t, own + back, texts[:, None]
            videos = other[:, p * c.video_negatives:(p + 1) * c.video_negatives]
            cols = slice(2, 2 + c.video_negatives)
            first[:, p, cols], current[:, p, cols], text[:, p, cols] = 5 * videos, 5 * videos + t, texts[:, None]
            valid[:, p, cols] = has_other[:, p * c.video_negatives:(p + 1) * c.video_negatives]
            cols = slice(2 + c.video_negatives, columns)
            first[:, p, cols], current[:, p, cols] = own[:, None], (own + t)[:, None]
            text[:, p, cols] = [rng.choice(self.vocab.others[self.vocab.text_label[i]], c.language_negatives)
                                for i in texts]
        return first, current, text, valid


# --- evaluation ------------------------------------------------------------------------------------------------
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def rank(score: ScoreFn, embeddings: Sequence[np.ndarray], text_index: Sequence[int], lang: np.ndarray,
         vocab: Vocabulary, alpha: float) -> Ranking:
    """Ranking accuracies from per-video frame embeddings [K, D] and instruction embeddings [N, L]."""
    wins: dict[str, list[bool]] = {name: [] for name in RANKING_NAMES}
    chance_top1 = []
    for e, text in zip(embeddings, text_index):
        k = len(e)
        others = vocab.others[vocab.text_label[text]]
        end = np.arange(int(math.ceil((1 - alpha) * (k - 1))), k)
        true = score(e[:1], e[end], lang[text][None])                                          # [len(end)]
        for t, true_score in zip(end, true):
            other = score(e[:1], e[t][None], lang[others])                                     # [len(others)]
            wins['instruction_pairwise'] += list(true_score > other)
            wins['instruction_top1'].append(bool(true_score > other.max()))
            chance_top1.append(1.0 / (1 + len(set(vocab.text_label[others]))))
        curve = score(e[:1], e, lang[text][None])                                              # [K]
        gap = max(1, int(round(alpha * (k - 1))))
        t1, t2 = np.triu_indices(k, gap)
        wins['progress_pairwise'] += list(curve[t2] > curve[t1])
        wins['end_beats_start'].append(bool(curve[-1] > curve[0]))
    values = {name: float(np.mean(w)) if w else float('nan') for name, w in wins.items()}
    chance = {'instruction_pairwise': 0.5, 'instruction_top1': float(np.mean(chance_top1)) if chance_top1 else 0.0,
              'progress_pairwise': 0.5, 'end_beats_start': 0.5}
    return Ranking(**values, comparisons={name: len(w) for name, w in wins.items()}, chance=chance)


def evaluate(model: RewardModel, videos: Sequence[Video], vocab: Vocabulary, alpha: float = 0.2) -> Ranking:
    """Ranking accuracies of any RewardModel on videos (frames embedded by the model itself)."""
    lang = model.embed_instructions(vocab.texts)
    embeddings = [model.embed_images(v.frames) for v in videos]
    return rank(model.score, embeddings, [vocab.index[v.instruction] for v in videos], lang, vocab, alpha)


# --- training ------------------------------------------------------------------------------------------------
def finetune(net: R3MNet, embed_instructions: Callable[[list[str]], np.ndarray], videos: Sequence[Video],
             config: FinetuneConfig = FinetuneConfig(), calibrate: bool = False, progress: bool = True,
             log: Callable[[str], None] = print) -> FinetuneResult:
    """Train `net`'s language-reward head (and layer4 if configured) in place on labeled videos.

    `embed_instructions` is the frozen language encoder (R3MReward.embed_instructions); `calibrate` estimates
    the ResNet's batch-norm statistics on the training frames first (for random initial weights).
    """
    check_one_size(videos)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    vocab = Vocabulary(videos)
    train, held = split_holdout(videos, config.holdout, config.seed)
    net.eval().requires_grad_(False)
    if calibrate:
        pool = np.concatenate([v.frames for v in train])
        pool = pool[rng.permutation(len(pool))[:2048]]
        log(f'estimating batch-norm statistics on {len(pool)} training frames (random initial weights)')
        calibrate_batchnorm(net, pool)
    if config.reset_head:
        for layer in net.lang_rew.pred:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
    lang_np = embed_instructions(vocab.texts)
    features = [frozen_features(net, v.frames, config.train_last_stage)
                for v in tqdm(train + held, desc='embedding frames once', unit='episode', disable=not progress)]
    train_features, held_features = features[:len(train)], features[len(train):]
    ranking = partial(_ranking, net, vocab=vocab, lang=lang_np, config=config)
    before = ranking(held_features, held)
    objective = Objective(net, train_features, np.array([vocab.label_of(v) for v in train]),
                          np.array([vocab.index[v.instruction] for v in train]),
                          torch.from_numpy(lang_np).to(net.mean.device), vocab, config)
    losses = _train(net, objective, config, rng, progress)
    after = ranking(held_features, held)
    train_after = ranking(train_features, train)
    return FinetuneResult(net, [v.episode_id for v in train], [v.episode_id for v in held], before, after,
                          train_after, losses, config)


def _ranking(net: R3MNet, features: list[torch.Tensor], videos: list[Video], vocab: Vocabulary, lang: np.ndarray,
             config: FinetuneConfig) -> Ranking | None:
    """Ranking accuracies of the net as it is now on videos whose frozen features are given (None: no videos)."""
    if not videos:
        return None
    device = net.mean.device
    with torch.no_grad():
        embeddings = [(last_stage(net, f) if config.train_last_stage else f).cpu().numpy() for f in features]

        def score(first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
            out = net.lang_rew(*(torch.from_numpy(np.ascontiguousarray(x)).to(device)
                                 for x in (first, current, instruction)))
            return np.broadcast_to(out.cpu().numpy(), (max(len(first), len(current), len(instruction)),))
        return rank(score, embeddings, [vocab.index[v.instruction] for v in videos], lang, vocab, config.alpha)


def _train(net: R3MNet, objective: Objective, config: FinetuneConfig, rng: np.random.Generator,
           progress: bool) -> list[float]:
    """Adam on the head (and layer4) for config.steps steps of the objective; the losses."""
    trainable = list(net.lang_rew.parameters()) + (list(net.convnet.layer4.parameters())
                                                   if config.train_last_stage else [])
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    losses: list[float] = []
    accuracy_avg = 0.0
    bar = tqdm(range(config.steps), desc='finetune reward', unit='step', disable=not progress)
    net.lang_rew.train()
    if config.train_last_stage:
        net.convnet.layer4.train()                 # batch statistics while training, as R3M's convnet.train()
    for step in bar:
        loss, accuracy = objective(rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        accuracy_avg = accuracy if step == 0 else 0.98 * accuracy_avg + 0.02 * accuracy
        if step % 20 == 0:
            bar.set_postfix(loss=f'{np.mean(losses[-20:]):.3f}', rank_acc=f'{accuracy_avg:.2f}')
    net.eval().requires_grad_(False)
    return losses
