"""Policy bundle: the directory a trained policy travels in from the workstation to the robot.

Layout::

    BUNDLE/
      manifest.json        # this module's Manifest
      policy.onnx          # image uint8 [1,H,W,3], state f32 [1,S], instruction f32 [1,E] (+ image_<camera> for
                           # each further camera, e.g. image_wrist) (+ recurrent) -> action f32 [1,4]
      text_encoder.onnx    # input_ids i64 [1,L], attention_mask i64 [1,L] -> embedding f32 [1,E]
      tokenizer/vocab.txt  # BERT uncased WordPiece vocabulary

Robot side: no torch and no onnx package here, only json/hashlib; the ONNX signatures are
checked against a live onnxruntime session by `check_signature`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from lamp_ros.contract import ACTION_DIM, ACTION_SCALE_M, CAMERA_TOPICS, CONTRACT_VERSION, STATE_KEYS
from lamp_ros.fileio import atomic_write_text

FORMAT = 'lamp_ros.policy_bundle'
MANIFEST = 'manifest.json'
POLICY_FILE = 'policy.onnx'
TEXT_ENCODER_FILE = 'text_encoder.onnx'
TOKENIZER_DIR = 'tokenizer'

IMAGE_INPUT, STATE_INPUT, INSTRUCTION_INPUT, ACTION_OUTPUT = 'image', 'state', 'instruction', 'action'
TOKEN_IDS_INPUT, TOKEN_MASK_INPUT, EMBEDDING_OUTPUT = 'input_ids', 'attention_mask', 'embedding'

DTYPES = ('uint8', 'float32', 'int64')


def camera_input(camera: str) -> str:
    """The policy input of a camera's image: 'image' for the front camera, 'image_<camera>' for the others."""
    return IMAGE_INPUT if camera == 'front' else f'{IMAGE_INPUT}_{camera}'


class BundleError(ValueError):
    """A bundle that must not be run; the message names what is wrong and where."""

@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @staticmethod
    def from_json(d: dict[str, Any]) -> 'TensorSpec':
        return TensorSpec(str(d['name']), tuple(int(s) for s in d['shape']), str(d['dtype']))

@dataclass(frozen=True)
class RecurrentPair:
    """A recurrent state carried between control steps: fed back from `output` to `input`, zeros at episode start."""
    input: str
    output: str

@dataclass(frozen=True)
class Manifest:
    model_version: str
    image_size: tuple[int, int]                    # (height, width)
    state_keys: tuple[str, ...]
    embedding_dim: int
    max_text_length: int
    policy_inputs: tuple[TensorSpec, ...]
    policy_outputs: tuple[TensorSpec, ...]
    text_inputs: tuple[TensorSpec, ...]
    text_outputs: tuple[TensorSpec, ...]
    recurrent: tuple[RecurrentPair, ...] = ()
    control_rate_hz: float = 10.0
    action_dim: int = ACTION_DIM
    action_scale_m: float = ACTION_SCALE_M
    contract_version: int = CONTRACT_VERSION
    lowercase: bool = True
    created: str = ''
    files: dict[str, str] = field(default_factory=dict)   # relative path -> sha256
    tasks: tuple[str, ...] = ()                           # the tasks it was trained for (empty: not recorded)
    cameras: tuple[str, ...] = ('front',)                 # the images it sees, front first (all of image_size)

    # --- construction -------------------------------------------------------------------------
    @staticmethod
    def standard(model_version: str, image_size: Sequence[int], state_keys: Sequence[str], embedding_dim: int,
                 max_text_length: int, control_rate_hz: float,
                 recurrent: Sequence[tuple[TensorSpec, TensorSpec]] = (), tasks: Sequence[str] = (),
                 cameras: Sequence[str] = ('front',)) -> 'Manifest':
        """The manifest of a bundle with the standard input/output names (what the exporter writes)."""
        h, w = int(image_size[0]), int(image_size[1])
        inputs = [TensorSpec(IMAGE_INPUT, (1, h, w, 3), 'uint8'),
                  TensorSpec(STATE_INPUT, (1, len(state_keys)), 'float32'),
                  TensorSpec(INSTRUCTION_INPUT, (1, embedding_dim), 'float32')]
        inputs += [TensorSpec(camera_input(c), (1, h, w, 3), 'uint8') for c in cameras[1:]]
        outputs = [TensorSpec(ACTION_OUTPUT, (1, ACTION_DIM), 'float32')]
        inputs += [i for i, _ in recurrent]
        outputs += [o for _, o in recurrent]
        L = int(max_text_length)
        return Manifest(
            model_version=model_version, image_size=(h, w), state_keys=tuple(state_keys),
            embedding_dim=int(embedding_dim), max_text_length=L,
            policy_inputs=tuple(inputs), policy_outputs=tuple(outputs),
            text_inputs=(TensorSpec(TOKEN_IDS_INPUT, (1, L), 'int64'), TensorSpec(TOKEN_MASK_INPUT, (1, L), 'int64')),
            text_outputs=(TensorSpec(EMBEDDING_OUTPUT, (1, int(embedding_dim)), 'float32'),),
            recurrent=tuple(RecurrentPair(i.name, o.name) for i, o in recurrent),
            control_rate_hz=float(control_rate_hz), tasks=tuple(tasks), cameras=tuple(cameras),
            created=datetime.now(timezone.utc).isoformat(timespec='seconds'))

    # --- JSON ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            'format': FORMAT,
            'contract_version': self.contract_version,
            'model_version': self.model_version,
            'created': self.created,
            'tasks': list(self.tasks),
            'control_rate_hz': self.control_rate_hz,
            'action': {'dim': self.action_dim, 'scale_m': self.action_scale_m},
            'observation': {'image_size': list(self.image_size), 'image_encoding': 'rgb8',
                            'cameras': list(self.cameras), 'state_keys': list(self.state_keys)},
            'policy': {'file': POLICY_FILE,
                       'inputs': [_spec_json(s) for s in self.policy_inputs],
                       'outputs': [_spec_json(s) for s in self.policy_outputs],
                       'recurrent': [asdict(r) for r in self.recurrent]},
            'text_encoder': {'file': TEXT_ENCODER_FILE, 'tokenizer_dir': TOKENIZER_DIR,
                             'lowercase': self.lowercase, 'max_length': self.max_text_length,
                             'embedding_dim': self.embedding_dim,
                             'inputs': [_spec_json(s) for s in self.text_inputs],
                             'outputs': [_spec_json(s) for s in self.text_outputs]},
            'files': dict(sorted(self.files.items())),
        }

    @staticmethod
    def from_json(d: dict[str, Any], where: str = 'manifest') -> 'Manifest':
        if d.get('format') != FORMAT:
            raise BundleError(f"{where}: 'format' is {d.get('format')!r}, expected {FORMAT!r}")
        version = d.get('contract_version')
        if version != CONTRACT_VERSION:
            raise BundleError(f'{where}: contract_version {version!r} is not supported '
                              f'(this lamp_ros speaks version {CONTRACT_VERSION})')
        try:
            return Manifest(**_top_fields(d), **_observation_fields(d['observation']),
                            **_policy_fields(d['policy']), **_text_fields(d['text_encoder']))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise BundleError(f'{where}: malformed field ({type(e).__name__}: {e})') from e

    # --- consistency of the manifest with itself and with the contract -------------------------
    def check(self, where: str = 'manifest') -> None:
        tensors = self.policy_inputs + self.policy_outputs + self.text_inputs + self.text_outputs
        problems = [*self._scalar_problems(), *self._tensor_problems(), *self._input_problems(),
                    *(f'tensor {s.name!r} has dtype {s.dtype!r} (allowed: {DTYPES})' for s in tensors
                      if s.dtype not in DTYPES)]
        if problems:
            raise BundleError(f'{where}: ' + '; '.join(problems))

    def _scalar_problems(self) -> list[str]:
        """State keys, action width, control rate and cameras against the contract."""
        problems = []
        unknown = [k for k in self.state_keys if k not in STATE_KEYS]
        if unknown:
            problems.append(f'unknown state_keys {unknown} (known: {list(STATE_KEYS)})')
        if self.action_dim != ACTION_DIM:
            problems.append(f'action dim {self.action_dim} != {ACTION_DIM}')
        if self.control_rate_hz <= 0:
            problems.append(f'control_rate_hz {self.control_rate_hz} must be > 0')
        if not self.cameras or self.cameras[0] != 'front' or len(set(self.cameras)) != len(self.cameras) or \
                any(cam not in CAMERA_TOPICS for cam in self.cameras):
            problems.append(f'cameras {list(self.cameras)} must be distinct, start with front and come from '
                            f'{list(CAMERA_TOPICS)}')
        return problems

    def _tensor_problems(self) -> list[str]:
        """Every standard tensor present, with the standard shape and dtype."""
        expected = Manifest.standard(self.model_version, self.image_size, self.state_keys, self.embedding_dim,
                                     self.max_text_length, self.control_rate_hz, cameras=self.cameras)
        problems = []
        for role, got, want in (('policy input', self.policy_inputs, expected.policy_inputs),
                                ('policy output', self.policy_outputs, expected.policy_outputs),
                                ('text encoder input', self.text_inputs, expected.text_inputs),
                                ('text encoder output', self.text_outputs, expected.text_outputs)):
            have = {s.name: s for s in got}
            problems += [f'{role} {spec.name!r} is missing' if spec.name not in have else
                         f'{role} {spec.name!r} is {_fmt(have[spec.name])}, expected {_fmt(spec)}'
                         for spec in want if have.get(spec.name) != spec]
        return problems

    def _input_problems(self) -> list[str]:
        """Recurrent pairs name a policy input and output; every other input is a standard one."""
        in_names = {s.name for s in self.policy_inputs}
        out_names = {s.name for s in self.policy_outputs}
        problems = [f'recurrent pair {r.input}->{r.output} does not name a policy input and output'
                    for r in self.recurrent if r.input not in in_names or r.output not in out_names]
        standard = {STATE_INPUT, INSTRUCTION_INPUT, *(camera_input(cam) for cam in self.cameras)}
        extra_in = in_names - standard - {r.input for r in self.recurrent}
        if extra_in:
            problems.append(f'policy inputs {sorted(extra_in)} are neither standard nor recurrent')
        return problems


def _top_fields(d: dict[str, Any]) -> dict[str, Any]:
    """Manifest fields at the manifest's top level and under 'action'."""
    return dict(model_version=str(d['model_version']), control_rate_hz=float(d['control_rate_hz']),
                action_dim=int(d['action']['dim']), action_scale_m=float(d['action']['scale_m']),
                contract_version=int(d['contract_version']), created=str(d.get('created', '')),
                tasks=tuple(str(t) for t in d.get('tasks', [])),
                files={str(k): str(v) for k, v in d.get('files', {}).items()})


def _observation_fields(obs: dict[str, Any]) -> dict[str, Any]:
    return dict(image_size=(int(obs['image_size'][0]), int(obs['image_size'][1])),
                state_keys=tuple(str(k) for k in obs['state_keys']),
                cameras=tuple(str(c) for c in obs.get('cameras', ['front'])))   # older bundles: front only


def _policy_fields(pol: dict[str, Any]) -> dict[str, Any]:
    return dict(policy_inputs=tuple(TensorSpec.from_json(s) for s in pol['inputs']),
                policy_outputs=tuple(TensorSpec.from_json(s) for s in pol['outputs']),
                recurrent=tuple(RecurrentPair(str(r['input']), str(r['output'])) for r in pol.get('recurrent', [])))


def _text_fields(txt: dict[str, Any]) -> dict[str, Any]:
    return dict(embedding_dim=int(txt['embedding_dim']), max_text_length=int(txt['max_length']),
                text_inputs=tuple(TensorSpec.from_json(s) for s in txt['inputs']),
                text_outputs=tuple(TensorSpec.from_json(s) for s in txt['outputs']),
                lowercase=bool(txt.get('lowercase', True)))

def _spec_json(s: TensorSpec) -> dict[str, Any]:
    return {'name': s.name, 'shape': list(s.shape), 'dtype': s.dtype}

def _fmt(s: TensorSpec) -> str:
    return f'{s.dtype}{list(s.shape)}'

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()

def bundle_files(root: Path) -> list[Path]:
    """Every file of a bundle but the manifest, as paths relative to `root`."""
    return sorted(p.relative_to(root) for p in root.rglob('*') if p.is_file() and p.name != MANIFEST)

def write_manifest(root: Path, manifest: Manifest) -> Manifest:
    """Hash the bundle's files into the manifest and write it atomically (the manifest is written last,
    so a directory without one is an incomplete bundle)."""
    root = Path(root)
    files = {str(p): sha256_file(root / p) for p in bundle_files(root)}
    manifest = Manifest(**{**manifest.__dict__, 'files': files})
    atomic_write_text(root / MANIFEST, json.dumps(manifest.to_json(), indent=2) + '\n')
    return manifest

def read_manifest(root: Path, verify_files: bool = True) -> Manifest:
    """Read and check a bundle's manifest; with `verify_files`, also the presence and hashes of its files."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f'bundle {root}: not a directory')
    if not path.is_file():
        raise BundleError(f'bundle {root}: no {MANIFEST} (incomplete or not a policy bundle)')
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f'{path}: unreadable JSON ({e})') from e
    manifest = Manifest.from_json(data, where=str(path))
    manifest.check(where=str(path))
    required = [POLICY_FILE, TEXT_ENCODER_FILE, f'{TOKENIZER_DIR}/vocab.txt']
    missing = [f for f in required if not (root / f).is_file()]
    if missing:
        raise BundleError(f'bundle {root}: missing files {missing}')
    if verify_files:
        for rel, digest in manifest.files.items():
            p = root / rel
            if not p.is_file():
                raise BundleError(f'bundle {root}: manifest lists {rel}, which is missing')
            if sha256_file(p) != digest:
                raise BundleError(f'bundle {root}: {rel} does not match its sha256 in the manifest (corrupt or edited)')
    return manifest

def check_signature(where: str, declared: Iterable[TensorSpec], actual: Iterable[tuple[str, Sequence[Any], str]],
                    kind: str) -> None:
    """Compare declared tensors with an ONNX model's real ones: (name, shape, onnx type string such as
    'tensor(float)'). Symbolic dimensions in the model accept any declared size."""
    onnx_types = {'tensor(uint8)': 'uint8', 'tensor(float)': 'float32', 'tensor(int64)': 'int64'}
    declared = {s.name: s for s in declared}
    actual = {name: (tuple(shape), onnx_types.get(t, t)) for name, shape, t in actual}
    problems = []
    for name in sorted(set(declared) | set(actual)):
        if name not in actual:
            problems.append(f'{kind} {name!r} is declared in the manifest but the ONNX model has no such {kind}')
            continue
        if name not in declared:
            problems.append(f'the ONNX model has {kind} {name!r}, which the manifest does not declare')
            continue
        spec, (shape, dtype) = declared[name], actual[name]
        if dtype != spec.dtype:
            problems.append(f'{kind} {name!r}: ONNX dtype {dtype}, manifest says {spec.dtype}')
        if len(shape) != len(spec.shape) or any(isinstance(a, int) and a != b for a, b in zip(shape, spec.shape)):
            problems.append(f'{kind} {name!r}: ONNX shape {list(shape)}, manifest says {list(spec.shape)}')
    if problems:
        raise BundleError(f'{where}: ' + '; '.join(problems))
