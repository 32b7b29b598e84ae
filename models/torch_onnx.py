"""torch -> ONNX, one helper for every export: the policy bundle (training/export.py) and the R3M reward
(models/r3m/onnx_export.py). Workstation only: it imports torch; the robot loads the results with onnxruntime.

Exporter: torch.onnx's TorchScript exporter (`dynamo=False`). With torch 2.13 it works from the pinned
environment alone, exports in a fraction of the time, and gives an ORT graph that is as fast (fused Gelu,
FusedGemm, NCHWc convs). The dynamo exporter needs the extra `onnxscript` package and, for the text encoder,
writes an invalid model when the output is named 'embedding' (a clash with DistilBERT's internal names).
Callers check every export numerically against torch before it is used.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

OPSET = 17


def onnx_export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
                outputs: list[str], dynamic_axes: dict[str, dict[int, str]] | None = None) -> None:
    """TorchScript-based export, constants folded; fixed shapes (batch 1) unless `dynamic_axes` names some."""
    with warnings.catch_warnings():
        # Known and intended (see the module docstring); the numeric check after export guards the result.
        warnings.filterwarnings('ignore', message='You are using the legacy TorchScript-based ONNX export',
                                category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning,
                                module=r'torch\.onnx\._internal\.torchscript_exporter')
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        # transformers' padding mask indexes with aranges (never negative), the case this warning is about.
        warnings.filterwarnings('ignore', message='Exporting aten::index operator of advanced indexing',
                                category=UserWarning)
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True, dynamic_axes=dynamic_axes or None)
