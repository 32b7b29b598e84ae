"""The run directory: one place for everything a training run writes.

    RUN/
      run.json               what the run is (mode, task, text encoder, reward checkpoint, init run, instruction);
                             written last at creation: a directory without it is an incomplete run
      config.yaml            the resolved TrainConfig
      seeds.json             every seed the run derives (training, episodes, evaluation, network init)
      checkpoints/step_<N>/  model + optimizer (safetensors), state.json (counters, RNG, history)
      replay/                one .npz per episode (training/replay.py)
      demo_replay/           finetuning: the scripted expert's demonstration episodes, sampled beside replay/
      tb/                    TensorBoard event files
      evals.json             evaluation history; learning_curve.png drawn from it
      videos/                eval_<step>.mp4
      instructions.json      pretraining: instructions seen and how often (finetuning's tuning candidates)
      instruction_tuning.json  finetuning with tune_instruction: every candidate's return
      text_encoder/          only for a random text encoder (no R3M checkpoint)
      lock                   held (flock) by the process training the run: never two at once
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lamp_ros.fileio import atomic_write_text
from training.config import TrainConfig, dump_yaml, load_yaml
from training.text import TextEncoderSource

MODES = ('pretrain', 'finetune')


class RunError(ValueError):
    """A run directory that cannot be used as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def info(self) -> Path:
        return self.root / 'run.json'

    @property
    def config(self) -> Path:
        return self.root / 'config.yaml'

    @property
    def seeds(self) -> Path:
        return self.root / 'seeds.json'

    @property
    def replay(self) -> Path:
        return self.root / 'replay'

    @property
    def demo_replay(self) -> Path:
        return self.root / 'demo_replay'

    @property
    def tensorboard(self) -> Path:
        return self.root / 'tb'

    @property
    def evals(self) -> Path:
        return self.root / 'evals.json'

    @property
    def curve(self) -> Path:
        return self.root / 'learning_curve.png'

    @property
    def videos(self) -> Path:
        return self.root / 'videos'

    @property
    def instructions(self) -> Path:
        return self.root / 'instructions.json'

    @property
    def tuning(self) -> Path:
        return self.root / 'instruction_tuning.json'


@dataclass(frozen=True)
class RunInfo:
    mode: str
    task: str
    text_encoder: TextEncoderSource
    reward_checkpoint: str | None = None      # pretraining: the R3M checkpoint of r_VLM
    init_run: str | None = None               # finetuning: the pretrained run ...
    init_step: int | None = None              # ... and the checkpoint step it started from
    instruction: str | None = None            # finetuning: the instruction (after tuning); pretraining: per episode
    created: str = ''

    def to_json(self) -> dict[str, Any]:
        return {'mode': self.mode, 'task': self.task, 'text_encoder': self.text_encoder.to_json(),
                'reward_checkpoint': self.reward_checkpoint, 'init_run': self.init_run, 'init_step': self.init_step,
                'instruction': self.instruction, 'created': self.created}

    @staticmethod
    def from_json(data: dict[str, Any]) -> 'RunInfo':
        return RunInfo(mode=data['mode'], task=data['task'],
                       text_encoder=TextEncoderSource.from_json(data['text_encoder']),
                       reward_checkpoint=data.get('reward_checkpoint'), init_run=data.get('init_run'),
                       init_step=data.get('init_step'), instruction=data.get('instruction'),
                       created=data.get('created', ''))


def seeds_for(seed: int, scene_seed_base: int = 0) -> dict[str, int]:
    """Every seed a run uses, derived from its one seed (recorded in seeds.json)."""
    return {'seed': seed, 'network_init': seed, 'torch': seed, 'numpy': seed,
            'train_episode_base': scene_seed_base + seed * 1_000_003, 'eval_episode_base': EVAL_SEED_BASE,
            'tune_episode_base': TUNE_SEED_BASE, 'demo_episode_base': DEMO_SEED_BASE + seed * 10_000}


EVAL_SEED_BASE = 2_000_000_000        # the same evaluation scenes for every run and seed: comparable curves
TUNE_SEED_BASE = 2_100_000_000
DEMO_SEED_BASE = 2_050_000_000        # finetuning's demo scenes: DEMO_SEED_BASE + seed * 10_000 + k


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


def write_new_run(paths: RunPaths, config: TrainConfig, info: RunInfo) -> None:
    """config.yaml and seeds.json, then run.json last (the run exists from then on)."""
    atomic_write_text(paths.config, dump_yaml(config))
    atomic_write_text(paths.seeds, json.dumps(seeds_for(config.seed, config.scene_seed_base), indent=1) + '\n')
    atomic_write_text(paths.info, json.dumps(info.to_json(), indent=1) + '\n')


def read_run(root: Path) -> tuple[RunPaths, TrainConfig, RunInfo]:
    paths = RunPaths(Path(root))
    if not paths.root.is_dir():
        raise RunError(f'{paths.root}: no such run directory')
    if not paths.info.is_file():
        raise RunError(f'{paths.root}: not a complete run (no run.json): it was interrupted while being created, '
                       'or is not a run directory; delete it or choose another --run-dir')
    info = RunInfo.from_json(json.loads(paths.info.read_text()))
    config = load_yaml(paths.config.read_text(), where=str(paths.config))
    return paths, config, info


def update_config(paths: RunPaths, config: TrainConfig) -> None:
    atomic_write_text(paths.config, dump_yaml(config))


def check_new_run_dir(root: Path) -> RunPaths:
    paths = RunPaths(Path(root))
    if paths.root.exists() and any(paths.root.iterdir()):
        raise RunError(f'{paths.root} exists and is not an empty directory; choose another --run-dir '
                       '(or delete it)')
    paths.root.mkdir(parents=True, exist_ok=True)
    return paths
