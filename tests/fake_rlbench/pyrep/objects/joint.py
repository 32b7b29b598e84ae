"""FAKE pyrep.objects.joint.Joint: position in the world and the joint's own angle/offset."""
from pyrep.objects.object import Object


class Joint(Object):
    _fake_kind = 'joint'

    def get_joint_position(self) -> float:
        return float(self._fake().joint_position)

    def set_joint_position(self, position: float) -> None:
        self._fake().joint_position = float(position)
