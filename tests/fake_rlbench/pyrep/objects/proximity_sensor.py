"""FAKE pyrep.objects.proximity_sensor.ProximitySensor."""
from pyrep.objects.object import Object


class ProximitySensor(Object):
    _fake_kind = 'proximity_sensor'
