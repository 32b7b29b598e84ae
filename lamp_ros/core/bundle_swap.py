"""Policy bundles checked against the running graph, and swapped in without stalling the control loop.

A new bundle is loaded and validated in a background thread (onnxruntime sessions, signatures, rate and
scale), its instruction embedding precomputed there too; the control loop only takes the ready runtime at a
moment it knows is safe (between episodes), which costs a pointer swap.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from models.bundle import BundleError
from models.runtime import PolicyRuntime


def load_checked(path: Path, threads: int, control_rate_hz: float, action_scale_m: float) -> PolicyRuntime:
    """A bundle that may run in this graph, or BundleError saying why not."""
    runtime = PolicyRuntime.load(Path(path).expanduser(), threads=threads)
    m = runtime.manifest
    if abs(m.control_rate_hz - control_rate_hz) > 1e-6:
        raise BundleError(f'bundle {path} was made for {m.control_rate_hz} Hz control but control_rate_hz is '
                          f'{control_rate_hz}: each action would move the arm for the wrong time; set '
                          f'control_rate_hz to {m.control_rate_hz} or re-export the policy')
    if abs(m.action_scale_m - action_scale_m) > 1e-9:
        raise BundleError(f'bundle {path} has action scale {m.action_scale_m} m/step but action_scale_m is '
                          f'{action_scale_m}: set them equal')
    return runtime


@dataclass
class ReadyBundle:
    runtime: PolicyRuntime
    path: Path
    version: str
    instruction: str                      # the instruction `embedding` was computed for ('' if none)
    embedding: np.ndarray | None


class BundleSwapper:
    def __init__(self, load: Callable[[Path], PolicyRuntime], log_error: Callable[[str], None]) -> None:
        self._load, self._log_error = load, log_error
        self._lock = threading.Lock()
        self._ready: ReadyBundle | None = None
        self._wanted: tuple[Path, str, str] | None = None
        self._worker: threading.Thread | None = None
        self.last_error = ''

    def offer(self, path: Path, version: str, instruction: str) -> None:
        """Start loading (the newest offer wins if several arrive while one loads)."""
        with self._lock:
            self._wanted = (Path(path), version, instruction)
            if self._worker is None:            # the worker clears this, under the lock, when it finds no work
                self._worker = threading.Thread(target=self._work, name='bundle-loader', daemon=True)
                self._worker.start()

    def take(self) -> ReadyBundle | None:
        """The validated bundle, once, if one is ready."""
        with self._lock:
            ready, self._ready = self._ready, None
            return ready

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._worker is not None

    def _work(self) -> None:
        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    self._worker = None
                    return
            path, version, instruction = wanted
            try:
                runtime = self._load(path)
                embedding = runtime.embed_instruction(instruction) if instruction else None
            except BundleError as e:
                self.last_error = f'new bundle {version} refused: {e}'
                self._log_error(self.last_error)
                continue
            with self._lock:
                self._ready = ReadyBundle(runtime, path, version, instruction, embedding)
