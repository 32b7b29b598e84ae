"""Checkpoints: RUN/checkpoints/step_<N>/ with the agent's weights and optimizer state in safetensors and
the rest (counters, RNG states, config hash, optimizer hyperparameters) in JSON.

A checkpoint is written into a hidden temporary directory and renamed into place when complete, so every
step_<N> directory is complete; resuming takes the one with the highest N. `state.json` is written last.

    step_<N>/model.safetensors       <module>.<parameter>  (encoder, actor, critic, critic_target, ensemble)
    step_<N>/optimizer.safetensors   <optimizer>/<param index>/<slot>  (Adam's step, exp_avg, exp_avg_sq)
    step_<N>/state.json              {"step", "agent_updates", "config_hash", "rng", "optimizers", "trainer"}
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lamp_ros.fileio import atomic_write_text
from training.agent import DrQAgent

MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = 'model.safetensors', 'optimizer.safetensors', 'state.json'
_STEP_DIR = re.compile(r'step_(\d{9})')


class CheckpointMismatch(ValueError):
    """A checkpoint that does not fit the agent or run it is loaded into (the message says what differs)."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / 'checkpoints'


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (step, path), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match[1]), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(run_dir: Path, step: int, agent: DrQAgent, config_hash: str, trainer: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write the checkpoint of env step `step`; keep the newest `keep` checkpoints."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f'step_{step:09d}'
    tmp = Path(tempfile.mkdtemp(prefix=f'.{final.name}.partial-', dir=root))
    try:
        model = {f'{name}.{key}': value.detach().cpu().contiguous()
                 for name, module in agent.modules().items() for key, value in module.state_dict().items()}
        save_file(model, str(tmp / MODEL_FILE))
        tensors: dict[str, torch.Tensor] = {'rng/torch': torch.get_rng_state()}
        optimizers = {}
        for name, optimizer in agent.optimizers().items():
            state = optimizer.state_dict()
            slots: dict[str, dict[str, Any]] = {}
            for index, entry in state['state'].items():
                slots[str(index)] = {}
                for slot, value in entry.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f'{name}/{index}/{slot}'] = value.detach().cpu().contiguous()
                        slots[str(index)][slot] = 'tensor'
                    else:
                        slots[str(index)][slot] = value
            optimizers[name] = {'param_groups': state['param_groups'], 'state': slots}
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        payload = {'step': step, 'agent_updates': agent.updates, 'critic_linear_probe': agent.critic_linear_probe,
                   'config_hash': config_hash, 'optimizers': optimizers, 'trainer': trainer}
        atomic_write_text(tmp / STATE_FILE, json.dumps(payload, indent=1) + '\n')
        tmp.chmod(0o755)
        if final.exists():                       # the same step saved again (e.g. the final checkpoint)
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def load_weights(path: Path, agent: DrQAgent, modules: tuple[str, ...] | None = None) -> None:
    """Load module weights (all, or the named modules) from a checkpoint directory into `agent`."""
    tensors = load_file(str(Path(path) / MODEL_FILE))
    for name, module in agent.modules().items():
        if modules is not None and name not in modules:
            continue
        prefix = f'{name}.'
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointMismatch(f'{path}: {name} does not fit this agent (different architecture?): '
                                     f'{str(e).splitlines()[0]}') from e


def load_checkpoint(path: Path, agent: DrQAgent, config_hash: str) -> dict[str, Any]:
    """Restore weights, optimizer state, update counter and torch RNG; return the JSON payload."""
    path = Path(path)
    payload = json.loads((path / STATE_FILE).read_text())
    if payload['config_hash'] != config_hash:
        raise CheckpointMismatch(f'{path}: written under config hash {payload["config_hash"]}, this run has '
                                 f'{config_hash} (config.yaml changed after the checkpoint?)')
    load_weights(path, agent)
    tensors = load_file(str(path / OPTIMIZER_FILE))
    for name, optimizer in agent.optimizers().items():
        saved = payload['optimizers'][name]
        state = {int(index): {slot: tensors[f'{name}/{index}/{slot}'] if value == 'tensor' else value
                              for slot, value in entry.items()}
                 for index, entry in saved['state'].items()}
        optimizer.load_state_dict({'state': state, 'param_groups': saved['param_groups']})
    agent.updates = int(payload['agent_updates'])
    agent.set_critic_linear_probe(bool(payload['critic_linear_probe']))
    torch.set_rng_state(tensors['rng/torch'])
    return payload


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def numpy_rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
