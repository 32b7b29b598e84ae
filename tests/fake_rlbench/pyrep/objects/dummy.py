"""FAKE pyrep.objects.dummy.Dummy."""
from pyrep.objects.object import Object


class Dummy(Object):
    _fake_kind = 'dummy'
