"""FAKE pyrep.objects.shape.Shape."""
from pyrep.objects.object import Object


class Shape(Object):
    _fake_kind = 'shape'
