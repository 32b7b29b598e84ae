"""Export an R3MReward to ONNX (the layout in models/r3m/runtime.py), verified against torch before it exists.

Exporter: models/torch_onnx.py (torch.onnx's TorchScript exporter, `dynamo=False`), as the policy bundle, for
the same reasons (no onnxscript dependency, fast export, fused ORT graphs). The image encoder takes uint8 NHWC
with the /255 and ImageNet normalization inside the graph, dynamic batch and size; the head is the
broadcasting split form of R3M's MLP (a single first frame or instruction row serves N current frames).

The directory is built in a hidden sibling, loaded with the robot's OnnxR3MReward and compared with torch
(images at each verify size, instructions, head with broadcasting), and only then renamed into place.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lamp_ros.fileio import atomic_write_text, move_dir_into_place
from models.bundle import sha256_file
from models.r3m.model import ImageEncoder, R3MNet
from models.r3m.reward import R3MReward
from models.r3m.runtime import (HEAD_FILE, HEAD_INPUTS, HEAD_OUTPUT, IMAGE_ENCODER_FILE, IMAGE_INPUT, IMAGE_OUTPUT,
                                MANIFEST, ONNX_FILES, TEXT_ENCODER_FILE, TEXT_INPUTS, TEXT_OUTPUT, VOCAB_FILE,
                                OnnxManifest, OnnxR3MReward)
from models.torch_onnx import onnx_export

VERIFY_INSTRUCTIONS = ('push the button', 'Pick up the RED block and put it in the drawer.', 'open the drawer')


class OnnxExportError(RuntimeError):
    """onnxruntime does not reproduce torch within tolerance (the message has the numbers)."""


def export_onnx(reward: R3MReward, out_dir: str | Path, *, verify_sizes: Sequence[int] = (128,),
                atol: float = 1e-4, overwrite: bool = False) -> OnnxManifest:
    """Write `reward` as an ONNX export directory at `out_dir` and return its manifest.

    Agreement with torch is required to `atol` relative to each output's scale
    (max |ort - torch| <= atol * max(1, max |torch|)), checked at every size in `verify_sizes`.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f'{out} exists; pass overwrite=True (--overwrite) to replace it')
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
    tmp.chmod(0o755)
    net = reward.net
    try:
        _write_models(net.to('cpu'), reward.config.max_text_tokens, tmp)
        (tmp / VOCAB_FILE).write_bytes(reward.vocab_path.read_bytes())
    finally:
        net.to(reward.device).eval()   # the exporter restores each module's previous mode: all must stay in eval
    try:
        manifest = OnnxManifest(name=reward.name, size=net.config.size, image_dim=net.image_dim,
                                lang_dim=net.lang_dim, max_text_tokens=reward.config.max_text_tokens,
                                files={name: sha256_file(tmp / name) for name in ONNX_FILES}, verification={})
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest.to_json(), indent=2) + '\n')
        diffs = _verify(reward, OnnxR3MReward.load(tmp), verify_sizes, atol)
        manifest = OnnxManifest(**{**manifest.__dict__, 'verification': {
            'atol_relative': atol, 'image_sizes': list(verify_sizes), 'max_abs_diff': diffs,
            'compared_with': f'torch {torch.__version__}'}})
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest.to_json(), indent=2) + '\n')
        move_dir_into_place(tmp, out, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


@torch.no_grad()
def _write_models(net: R3MNet, max_text_tokens: int, root: Path) -> None:
    """image_encoder.onnx, reward_head.onnx and text_encoder.onnx of a CPU net in eval mode, into `root`."""
    images = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    onnx_export(ImageEncoder(net).eval(), (images,), root / IMAGE_ENCODER_FILE, [IMAGE_INPUT], [IMAGE_OUTPUT],
            {IMAGE_INPUT: {0: 'n', 1: 'height', 2: 'width'}, IMAGE_OUTPUT: {0: 'n'}})
    # Different row counts in the example, so that broadcasting (not one fixed shape) is what gets traced.
    rows = (torch.zeros(1, net.image_dim), torch.zeros(3, net.image_dim), torch.zeros(1, net.lang_dim))
    onnx_export(net.lang_rew, rows, root / HEAD_FILE, list(HEAD_INPUTS), [HEAD_OUTPUT],
            {**{name: {0: f'{name}_rows'} for name in HEAD_INPUTS}, HEAD_OUTPUT: {0: 'rows'}})
    # The example mask must contain padding: tracing freezes transformers' "no padding" shortcut.
    ids = torch.zeros(1, max_text_tokens, dtype=torch.int64)
    mask = torch.zeros(1, max_text_tokens, dtype=torch.int64)
    mask[0, :2] = 1
    onnx_export(net.lang_enc, (ids, mask), root / TEXT_ENCODER_FILE, list(TEXT_INPUTS), [TEXT_OUTPUT], {})


def _verify(reward: R3MReward, runtime: OnnxR3MReward, sizes: Sequence[int], atol: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    diffs: dict[str, float] = {}
    scales: dict[str, float] = {}

    def compare(key: str, got: np.ndarray, want: np.ndarray) -> None:
        if got.shape != want.shape:
            raise OnnxExportError(f'{key}: onnxruntime shape {got.shape} != torch shape {want.shape}')
        diffs[key] = max(diffs.get(key, 0.0), float(np.max(np.abs(got.astype(np.float64) - want))))
        scales[key] = max(scales.get(key, 1.0), float(np.max(np.abs(want))))

    embeddings = []
    for size in sizes:
        images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
        want = reward.embed_images(images)
        compare(f'image_embedding_{size}', runtime.embed_images(images), want)
        embeddings.append(want)
    texts = list(VERIFY_INSTRUCTIONS)
    compare('instruction_embedding', runtime.embed_instructions(texts), reward.embed_instructions(texts))
    frames = np.concatenate(embeddings)
    lang = reward.embed_instructions(texts)
    for first, current, instruction in ((frames[:1], frames, lang[:1]), (frames, frames[::-1], lang[[0] * len(frames)]),
                                        (frames[:1], frames[1:2], lang)):
        compare('reward', runtime.score(first, current, instruction), reward.score(first, current, instruction))
    bad = {k: v for k, v in diffs.items() if not v <= atol * scales[k]}
    if bad:
        raise OnnxExportError('onnxruntime disagrees with torch: ' + ', '.join(
            f'{k} max abs diff {v:.3g} (scale {scales[k]:.3g})' for k, v in bad.items()) + f'; relative atol {atol:g}')
    return diffs

