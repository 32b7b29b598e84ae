"""Read and write R3M checkpoints in the official layout (see layout.py).

model.pt is `{'r3m': state_dict}` as R3M's trainer saves it from a DataParallel model: every key starts with
'module.'; the DistilBERT weights sit under 'module.lang_enc.model.' (R3M's LangEncoder keeps the Hugging Face
model as `.model`; ours, models.text_encoder.SentenceEncoder, as `.bert`, so that one prefix is renamed).
It is loaded with torch.load(weights_only=True): tensors and plain containers only, never pickled code.

DistilBERT's configuration is not in the checkpoint (R3M took it from distilbert-base-uncased); it is read off
the tensor shapes, with 64-wide attention heads as in distilbert-base (768 / 12), so n_heads = dim / 64.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch
from transformers import DistilBertConfig, DistilBertModel

from lamp_ros.fileio import atomic_write_bytes, atomic_write_text
from models.r3m.layout import (CONFIG_FILE, MODEL_FILE, VOCAB_FILE, CheckpointError, R3MConfig, config_yaml,
                               read_config, require_checkpoint_files)
from models.r3m.model import R3MNet
from models.text_encoder import SentenceEncoder

PAYLOAD_KEY = 'r3m'
DATA_PARALLEL_PREFIX = 'module.'
OFFICIAL_LANG_PREFIX, OUR_LANG_PREFIX = 'lang_enc.model.', 'lang_enc.bert.'
# Buffers some transformers versions saved with DistilBERT; recomputed by the model, so dropped when present.
IGNORED_KEYS = frozenset({OFFICIAL_LANG_PREFIX + 'embeddings.position_ids'})
HEAD_DIM = 64
_LIST_AT_MOST = 12


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """model.pt -> the R3M state dict with the 'module.' prefix removed (official key names otherwise)."""
    path = Path(path)
    state = _r3m_state(_load_tensors_only(path), path)
    unprefixed = sorted(k for k in state if not k.startswith(DATA_PARALLEL_PREFIX))
    if unprefixed:
        raise CheckpointError(f'{path}: keys without the {DATA_PARALLEL_PREFIX!r} prefix of the official layout: '
                              f'{_some(unprefixed)}')
    return {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in state.items()}


def _load_tensors_only(path: Path) -> Any:
    """torch.load with weights_only=True: a file that pickles code is refused, a broken one named as such."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f'{path}: refused: it pickles objects other than tensors and plain containers '
                              f'(possibly code); checkpoints are loaded with torch.load(weights_only=True) only '
                              f'({str(e).splitlines()[0]})') from e
    except (RuntimeError, EOFError) as e:
        raise CheckpointError(f'{path}: not a readable torch checkpoint (truncated or corrupt download?): {e}') from e


def _r3m_state(payload: Any, path: Path) -> dict[str, torch.Tensor]:
    """payload['r3m'], checked to be a state dict of tensors."""
    if not isinstance(payload, dict) or PAYLOAD_KEY not in payload:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f'{path}: expected a dict with key {PAYLOAD_KEY!r} (R3M\'s model.pt), got {keys}')
    state = payload[PAYLOAD_KEY]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f'{path}: [{PAYLOAD_KEY!r}] must be a state dict of tensors')
    return state


def language_encoder_for(state: dict[str, torch.Tensor], where: str) -> SentenceEncoder:
    """A DistilBERT with the shapes the checkpoint's lang_enc.model.* tensors have (weights not yet loaded)."""
    def tensor(name: str) -> torch.Tensor:
        key = OFFICIAL_LANG_PREFIX + name
        if key not in state:
            raise CheckpointError(f'{where}: missing key {DATA_PARALLEL_PREFIX + key!r}: no DistilBERT language '
                                  'encoder in the checkpoint (R3M trained without language?)')
        return state[key]

    vocab_size, dim = tensor('embeddings.word_embeddings.weight').shape
    max_positions = tensor('embeddings.position_embeddings.weight').shape[0]
    hidden_dim = tensor('transformer.layer.0.ffn.lin1.weight').shape[0]
    layer_prefix = OFFICIAL_LANG_PREFIX + 'transformer.layer.'
    n_layers = len({k[len(layer_prefix):].split('.')[0] for k in state if k.startswith(layer_prefix)})
    if dim % HEAD_DIM:
        raise CheckpointError(f'{where}: DistilBERT width {dim} is not a multiple of the head size {HEAD_DIM}')
    config = DistilBertConfig(vocab_size=vocab_size, dim=dim, n_layers=n_layers, n_heads=dim // HEAD_DIM,
                              hidden_dim=hidden_dim, max_position_embeddings=max_positions)
    return SentenceEncoder(DistilBertModel(config))


def to_official_keys(net: R3MNet) -> dict[str, torch.Tensor]:
    """The net's state dict under official key names ('module.' prefix, lang_enc.model.*)."""
    out = {}
    for key, value in net.state_dict().items():
        if key.startswith(OUR_LANG_PREFIX):
            key = OFFICIAL_LANG_PREFIX + key[len(OUR_LANG_PREFIX):]
        out[DATA_PARALLEL_PREFIX + key] = value.detach().to('cpu').contiguous()
    return out


def net_from_state_dict(state: dict[str, torch.Tensor], config: R3MConfig, where: str) -> R3MNet:
    """Build R3MNet for `config` and load `state` (official names, 'module.' removed); exact key match."""
    net = R3MNet(config, language_encoder_for(state, where))
    expected = {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in to_official_keys(net).items()}
    given = {k: v for k, v in state.items() if k not in IGNORED_KEYS}
    problems = _key_problems(expected, given, config)
    if problems:
        raise CheckpointError(f'{where}: not an R3M ResNet-{config.size} language-reward checkpoint: '
                              + '; '.join(problems))
    ours = {(OUR_LANG_PREFIX + k[len(OFFICIAL_LANG_PREFIX):] if k.startswith(OFFICIAL_LANG_PREFIX) else k): v
            for k, v in given.items()}
    net.load_state_dict(ours, strict=True)
    return net.eval()


def _key_problems(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], config: R3MConfig) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors of a state dict against the net the config builds."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    problems = []
    if missing:
        problems.append(f'missing keys {_some(DATA_PARALLEL_PREFIX + k for k in missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_some(DATA_PARALLEL_PREFIX + k for k in unexpected)}')
    wrong = [f'{DATA_PARALLEL_PREFIX + k}: {list(given[k].shape)} (expected {list(v.shape)})'
             for k, v in expected.items() if k in given and given[k].shape != v.shape]
    if wrong:
        problems.append(f'wrong shapes {_some(wrong)} (config says ResNet-{config.size}, hidden_dim '
                        f'{config.hidden_dim})')
    return problems


def load_net(checkpoint_dir: str | Path, device: str | torch.device = 'cpu') -> R3MNet:
    """An R3M checkpoint directory -> R3MNet on `device`; WeightsMissing if files are absent."""
    root = require_checkpoint_files(Path(checkpoint_dir))
    config = read_config(root / CONFIG_FILE)
    state = read_state_dict(root / MODEL_FILE)
    net = net_from_state_dict(state, config, where=str(root / MODEL_FILE))
    vocab_lines = len((root / VOCAB_FILE).read_text(encoding='utf-8').splitlines())
    if vocab_lines > net.lang_enc.vocab_size:
        raise CheckpointError(f'{root / VOCAB_FILE}: {vocab_lines} tokens, but the checkpoint\'s DistilBERT has '
                              f'only {net.lang_enc.vocab_size} token embeddings (wrong vocabulary file?)')
    return net.to(device)


def save_checkpoint(net: R3MNet, checkpoint_dir: str | Path, vocab_path: str | Path,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write `net` in the official layout (model.pt, config.yaml, vocab.txt), each file atomically.

    `extra` adds plain entries beside 'r3m' in model.pt (e.g. {'global_step': 1000}), as R3M's trainer does.
    """
    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    if Path(vocab_path).resolve() != (root / VOCAB_FILE).resolve():
        atomic_write_bytes(root / VOCAB_FILE, Path(vocab_path).read_bytes())
    atomic_write_text(root / CONFIG_FILE, config_yaml(net.config))
    buffer = io.BytesIO()
    torch.save({**(extra or {}), PAYLOAD_KEY: to_official_keys(net)}, buffer)
    atomic_write_bytes(root / MODEL_FILE, buffer.getvalue())
    return root


def _some(items) -> str:
    items = list(items)
    shown = ', '.join(items[:_LIST_AT_MOST])
    return f'[{shown}' + (f', ... {len(items) - _LIST_AT_MOST} more]' if len(items) > _LIST_AT_MOST else ']')
