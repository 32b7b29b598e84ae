"""Robot-side policy runtime: a policy bundle run with onnxruntime (numpy + onnxruntime, no torch).

`PolicyRuntime.act` is the control loop's inner call. Its inputs and outputs live in buffers allocated
once and bound to the ONNX session with IO binding, so a step copies the observation into place,
runs the graph and copies 4 floats out: no per-step allocation, no feed dictionary, no dtype casts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

from models.bundle import (EMBEDDING_OUTPUT, IMAGE_INPUT, INSTRUCTION_INPUT, ACTION_OUTPUT, POLICY_FILE,
                           STATE_INPUT, TEXT_ENCODER_FILE, TOKEN_IDS_INPUT, TOKEN_MASK_INPUT, TOKENIZER_DIR,
                           BundleError, Manifest, TensorSpec, camera_input, check_signature, read_manifest)
from models.tokenize import InstructionTokenizer

_NUMPY_DTYPES = {'uint8': np.uint8, 'float32': np.float32, 'int64': np.int64}


def session_options(threads: int) -> ort.SessionOptions:
    """Options for a small-batch, latency-bound CPU session.

    All graph optimizations (fusions, NCHWc conv layout); `threads` intra- and inter-op threads, run
    sequentially; no spin-waiting, so idle pool threads don't burn cores the other robot nodes need
    (with threads=1 there is no pool and no spinning either way).
    """
    if threads < 1:
        raise ValueError(f'threads must be >= 1, got {threads}')
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = threads
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    so.add_session_config_entry('session.inter_op.allow_spinning', '0')
    return so


def _open_session(path: Path, threads: int, inputs: tuple[TensorSpec, ...],
                  outputs: tuple[TensorSpec, ...]) -> ort.InferenceSession:
    """An ORT session whose real inputs/outputs are checked against the manifest (BundleError if not)."""
    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime's load errors derive from Exception only
        raise BundleError(f'{path}: onnxruntime cannot load it ({type(e).__name__}: {e})') from e
    check_signature(str(path), inputs, [(i.name, i.shape, i.type) for i in session.get_inputs()], 'input')
    check_signature(str(path), outputs, [(o.name, o.shape, o.type) for o in session.get_outputs()], 'output')
    return session


def _spec(specs: tuple[TensorSpec, ...], name: str) -> TensorSpec:
    return next(s for s in specs if s.name == name)


class PolicyRuntime:
    """A loaded policy bundle: instruction -> embedding (once per instruction), observation -> action (per step)."""

    def __init__(self, bundle_dir: Path, manifest: Manifest, policy: ort.InferenceSession,
                 text_encoder: ort.InferenceSession, tokenizer: InstructionTokenizer) -> None:
        """Use `PolicyRuntime.load`; this wires already checked sessions to preallocated buffers."""
        self.bundle_dir = bundle_dir
        self._manifest = manifest
        self._policy = policy
        self._text_encoder = text_encoder
        self._tokenizer = tokenizer

        # One buffer per policy input and output, bound once; `act` writes into the input buffers.
        self._inputs = {s.name: np.zeros(s.shape, _NUMPY_DTYPES[s.dtype]) for s in manifest.policy_inputs}
        self._outputs = {s.name: np.zeros(s.shape, _NUMPY_DTYPES[s.dtype]) for s in manifest.policy_outputs}
        self._binding = policy.io_binding()
        for name, buf in self._inputs.items():
            self._binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(buf))
        for name, buf in self._outputs.items():
            self._binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(buf))

        # Views used on the hot path (batch dimension dropped).
        self._image = self._inputs[IMAGE_INPUT][0]
        self._more_images = {c: self._inputs[camera_input(c)][0] for c in manifest.cameras[1:]}
        self._state = self._inputs[STATE_INPUT][0]
        self._instruction = self._inputs[INSTRUCTION_INPUT][0]
        self._action = self._outputs[ACTION_OUTPUT][0]
        self._recurrent = [(self._inputs[r.input], self._outputs[r.output]) for r in manifest.recurrent]
        self._embedding_name = [EMBEDDING_OUTPUT]

    @staticmethod
    def load(bundle_dir: str | Path, threads: int = 1) -> 'PolicyRuntime':
        """Read and verify a bundle (manifest, file hashes, ONNX signatures) and open its sessions."""
        root = Path(bundle_dir)
        manifest = read_manifest(root)
        policy = _open_session(root / POLICY_FILE, threads, manifest.policy_inputs, manifest.policy_outputs)
        text_encoder = _open_session(root / TEXT_ENCODER_FILE, threads, manifest.text_inputs, manifest.text_outputs)
        for r in manifest.recurrent:
            i, o = _spec(manifest.policy_inputs, r.input), _spec(manifest.policy_outputs, r.output)
            if (i.shape, i.dtype) != (o.shape, o.dtype):
                raise BundleError(f'{root}: recurrent pair {r.input}->{r.output} has different shapes or dtypes '
                                  f'({i.dtype}{list(i.shape)} vs {o.dtype}{list(o.shape)})')
        tokenizer = InstructionTokenizer(root / TOKENIZER_DIR / 'vocab.txt', manifest.max_text_length,
                                         lowercase=manifest.lowercase)
        return PolicyRuntime(root, manifest, policy, text_encoder, tokenizer)

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def recurrent_state(self) -> dict[str, np.ndarray]:
        """A copy of the recurrent state that the next `act` feeds (empty for a feed-forward policy)."""
        return {r.input: self._inputs[r.input][0].copy() for r in self._manifest.recurrent}

    def embed_instruction(self, text: str) -> np.ndarray:
        """Instruction -> float32 [E] embedding; run once per new instruction, not per step."""
        if not isinstance(text, str):
            raise ValueError(f'instruction must be a str, got {type(text).__name__}')
        if not text.strip():
            raise ValueError('instruction is empty')
        ids, mask = self._tokenizer.encode(text)
        (embedding,) = self._text_encoder.run(self._embedding_name, {TOKEN_IDS_INPUT: ids, TOKEN_MASK_INPUT: mask})
        return embedding[0]

    def reset(self) -> None:
        """Start a new episode: recurrent state back to zeros."""
        for h_in, _ in self._recurrent:
            h_in.fill(0)

    def act(self, image: np.ndarray, state: np.ndarray, instruction_embedding: np.ndarray,
            more_images: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """One control step: image uint8 [H,W,3] rgb8 (front camera), state float32 [S] (manifest.state_keys
        order), instruction_embedding float32 [E] (from `embed_instruction`), and more_images: camera -> uint8
        [H,W,3] for each further camera of manifest.cameras -> action float32 [4] in [-1, 1]."""
        more_images = more_images or {}
        _check_array('image', image, self._image)
        _check_array('state', state, self._state)
        _check_array('instruction_embedding', instruction_embedding, self._instruction)
        if set(more_images) != set(self._more_images):
            raise ValueError(f'the bundle sees cameras {list(self._manifest.cameras)}: more_images must hold '
                             f'{sorted(self._more_images)}, got {sorted(more_images)}')
        for camera, buffer in self._more_images.items():
            _check_array(f'{camera} image', more_images[camera], buffer)
        if not np.isfinite(state).all():
            raise ValueError(f'state has non-finite values: {state}')
        np.copyto(self._image, image)
        for camera, buffer in self._more_images.items():
            np.copyto(buffer, more_images[camera])
        np.copyto(self._state, state)
        np.copyto(self._instruction, instruction_embedding)
        self._policy.run_with_iobinding(self._binding)
        for h_in, h_out in self._recurrent:
            np.copyto(h_in, h_out)
        return self._action.copy()


def _check_array(name: str, value: np.ndarray, like: np.ndarray) -> None:
    if not isinstance(value, np.ndarray):
        raise ValueError(f'{name} must be a numpy array of {like.dtype} {list(like.shape)}, got {type(value).__name__}')
    if value.dtype != like.dtype or value.shape != like.shape:
        raise ValueError(f'{name} must be {like.dtype} {list(like.shape)}, got {value.dtype} {list(value.shape)}')
