"""A binary success classifier as a reward model (HIL-SERL's reward): p(success | frame), in onnxruntime.

    CLASSIFIER/
      classifier.onnx     uint8 'image' [N, S, S, 3] RGB -> float32 'success_probability' [N]
      classifier.json     format, image_size S, threshold, tasks, training report (lamp-models train-classifier)

It implements the reward model interface (models/reward_model.py), so the reward node runs it like R3M
(`model: classifier`): the reward of a frame is its success probability; the first frame and the instruction
play no part (a classifier is trained per task). The episode node's success source 'reward' with
`reward_threshold` (the classifier's threshold) turns it into the success that ends an episode.

Robot side: numpy, OpenCV and onnxruntime only. Frames of another square size are resized to S (area
interpolation, as the camera node does); a checkpoint whose graph does not take S x S images, or gives no
probability per image, is refused at load with the mismatch named.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from models.reward_model import WeightsMissing, check_images

FORMAT = 'lamp-success-classifier/1'
ONNX_FILE, MANIFEST_FILE = 'classifier.onnx', 'classifier.json'
INPUT, OUTPUT = 'image', 'success_probability'


class ClassifierError(ValueError):
    """A classifier directory that cannot be used; the message names the file and the mismatch."""


@dataclass(frozen=True)
class ClassifierManifest:
    image_size: int
    threshold: float
    tasks: tuple[str, ...]
    name: str

    def to_json(self, report: dict | None = None) -> dict:
        return {'format': FORMAT, 'image_size': self.image_size, 'threshold': self.threshold,
                'tasks': list(self.tasks), 'name': self.name, 'report': report or {}}

    @staticmethod
    def read(path: Path) -> 'ClassifierManifest':
        try:
            data = json.loads(path.read_text())
            if data.get('format') != FORMAT:
                raise ClassifierError(f'{path}: format {data.get("format")!r}, expected {FORMAT!r}')
            manifest = ClassifierManifest(int(data['image_size']), float(data['threshold']),
                                          tuple(data.get('tasks', ())), str(data.get('name', path.parent.name)))
        except (OSError, ValueError, KeyError, TypeError) as e:
            if isinstance(e, ClassifierError):
                raise
            raise ClassifierError(f'{path}: not a classifier manifest ({type(e).__name__}: {e})') from e
        if manifest.image_size < 8 or not 0.0 < manifest.threshold < 1.0:
            raise ClassifierError(f'{path}: image_size {manifest.image_size} (>= 8) or threshold '
                                  f'{manifest.threshold} (in (0, 1)) out of range')
        return manifest


class SuccessClassifier:
    """The reward model interface over a classifier directory (see the module docstring)."""

    def __init__(self, session: ort.InferenceSession, manifest: ClassifierManifest) -> None:
        self.session, self.manifest = session, manifest
        self.name = manifest.name
        self.image_size = manifest.image_size

    @staticmethod
    def load(directory: str | Path, threads: int = 1) -> 'SuccessClassifier':
        directory = Path(directory).expanduser()
        onnx_path, manifest_path = directory / ONNX_FILE, directory / MANIFEST_FILE
        for path in (onnx_path, manifest_path):
            if not path.is_file():
                raise WeightsMissing(f'{path} is missing: train a classifier with `lamp-models train-classifier '
                                     f'--episodes DIR --out {directory}`')
        manifest = ClassifierManifest.read(manifest_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(onnx_path), options, providers=['CPUExecutionProvider'])
        except Exception as e:          # onnxruntime raises its own types for a file that is not a model
            raise ClassifierError(f'{onnx_path}: not a loadable ONNX model ({type(e).__name__}: '
                                  f'{str(e).splitlines()[0]})') from e
        _check_graph(session, manifest, onnx_path)
        return SuccessClassifier(session, manifest)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N] success probabilities."""
        check_images(images)
        images = square_resized(images, self.image_size)
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(images)})[0].reshape(-1).astype(np.float32)

    # --- the reward model interface ---------------------------------------------------------------------
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        return self.probabilities(images)[:, None]

    def embed_instructions(self, instructions: list[str]) -> np.ndarray:
        return np.zeros((len(instructions), 1), np.float32)

    def score(self, first: np.ndarray, current: np.ndarray, instruction: np.ndarray) -> np.ndarray:
        return np.asarray(current, np.float32)[:, 0]


def square_resized(images: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 frames [N, H, H, 3] at `size` x `size` (area interpolation down, linear up); ValueError for
    frames that are not square. Training and the robot resize the same way."""
    h, w = images.shape[1:3]
    if (h, w) == (size, size):
        return images
    if h != w:
        raise ValueError(f'the classifier takes square {size}x{size} frames; got {h}x{w} (crop the camera '
                         'image square first: the camera node does)')
    interpolation = cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation) for image in images])


def _check_graph(session: ort.InferenceSession, manifest: ClassifierManifest, path: Path) -> None:
    """The graph takes uint8 [N, S, S, 3] under 'image' and gives 'success_probability'; else ClassifierError."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    size = manifest.image_size
    if set(inputs) != {INPUT} or OUTPUT not in outputs:
        raise ClassifierError(f'{path}: inputs {sorted(inputs)} and outputs {sorted(outputs)}; expected input '
                              f'{INPUT!r} and output {OUTPUT!r}')
    spec = inputs[INPUT]
    if spec.type != 'tensor(uint8)' or list(spec.shape[1:]) != [size, size, 3]:
        raise ClassifierError(f'{path}: input {INPUT!r} is {spec.type} {spec.shape}; the manifest says uint8 '
                              f'[N, {size}, {size}, 3] (image_size {size})')
