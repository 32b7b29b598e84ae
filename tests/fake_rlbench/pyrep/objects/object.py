"""FAKE pyrep.objects.object.Object: a handle to a named object of the FAKE scene."""
from __future__ import annotations

import numpy as np

import fake_coppeliasim


class Object:
    _fake_kind = ''

    def __init__(self, name_or_handle: str | int) -> None:
        scene = fake_coppeliasim.SCENE
        if isinstance(name_or_handle, int):
            name_or_handle = scene.by_handle(name_or_handle).name
        self._name = name_or_handle
        self._handle = scene.get(name_or_handle, self._fake_kind).handle

    def _fake(self) -> fake_coppeliasim.FakeObject:
        return fake_coppeliasim.SCENE.get(self._name, self._fake_kind)

    def get_handle(self) -> int:
        return self._handle

    def get_name(self) -> str:
        return self._name

    def get_position(self, relative_to: Object | None = None) -> np.ndarray:
        if relative_to is not None:
            raise NotImplementedError('FAKE pyrep: only world-frame positions')
        return self._fake().position.copy()

    def set_position(self, position, relative_to: Object | None = None) -> None:
        if relative_to is not None:
            raise NotImplementedError('FAKE pyrep: only world-frame positions')
        self._fake().position = np.asarray(position, dtype=np.float64).copy()
