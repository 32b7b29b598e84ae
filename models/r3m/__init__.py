"""R3M language reward (Nair et al. 2022) as LAMP uses it: r_t = MLP([e(o_0), e(o_t), l]).

Modules (importing this package imports nothing heavy; names below load their module on first use):

    layout       checkpoint directory layout, config.yaml, default paths, "weights missing" message   (no torch)
    model        R3MNet: torchvision ResNet + DistilBERT sentence encoder + language-reward head
    checkpoint   official model.pt load/save (weights_only), key and shape checks
    reward       R3MReward: the RewardModel protocol on torch, CPU or GPU
    onnx_export  export image encoder, head and text encoder to ONNX, verified against torch
    runtime      OnnxR3MReward: the RewardModel protocol on onnxruntime                              (no torch)
    fetch        download the official files (size/hash checks, resume, atomic)                       (no torch)
    text         R3MTokenizer (BERT uncased WordPiece, fixed length, no silent truncation)           (no torch)
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    'R3MConfig': 'layout', 'default_checkpoint_dir': 'layout', 'default_onnx_dir': 'layout',
    'weights_missing_message': 'layout',
    'R3MNet': 'model',
    'CheckpointError': 'layout', 'load_net': 'checkpoint', 'save_checkpoint': 'checkpoint',
    'R3MReward': 'reward', 'R3MRewardConfig': 'reward',
    'export_onnx': 'onnx_export', 'OnnxExportError': 'onnx_export',
    'OnnxR3MReward': 'runtime',
    'fetch_r3m': 'fetch', 'FetchError': 'fetch',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy public names, so `models.r3m.runtime` (robot side) never pulls in torch through this package."""
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
