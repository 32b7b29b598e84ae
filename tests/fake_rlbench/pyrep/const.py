"""FAKE pyrep.const: RenderMode with the real member names."""
from enum import Enum


class RenderMode(Enum):
    OPENGL = 0
    OPENGL_AUXILIARY = 1
    OPENGL_COLOR_CODED = 2
    OPENGL3 = 7
    OPENGL3_WINDOWED = 8
