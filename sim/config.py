"""Scene configuration: every knob of the simulator in one dataclass (docs/sim.md explains them)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lamp_ros.contract import DEFAULT_CONTROL_RATE_HZ
from sim.instructions import PROMPT_STYLES, InstructionConfig
from sim.robot import ArmConfig
from sim.textures import DEFAULT_TEXTURE_DIR

DEFAULT_MESH_DIR = Path(__file__).resolve().parent / 'assets' / 'meshes'


@dataclass(frozen=True)
class SceneConfig:
    image_height: int = 128
    image_width: int = 128
    control_dt: float = 1.0 / DEFAULT_CONTROL_RATE_HZ
    """One env step = one control period of the ROS graph (s)."""
    physics_dt: float = 0.002
    render_scale: int = 1
    """Render cameras at render_scale x the image size and downsample by pixel area (cv2.INTER_AREA): antialiased
    images, as a camera node's resize of a larger frame gives them. The ROS graph renders 128x128 and the policy
    node area-resizes to a 64x64 bundle: render_scale 2 at 64 is the same picture."""

    randomize: bool = True
    """Visual domain randomization every episode: textures, colours, lighting, camera pose. Object
    placement is always drawn from the episode's seed (as RLBench task variations are)."""
    texture_dir: Path = DEFAULT_TEXTURE_DIR
    """Root with table/, wall/, floor/ image folders; the per-surface options below override it."""
    table_texture_dir: Path | None = None
    wall_texture_dir: Path | None = None
    floor_texture_dir: Path | None = None
    texture_px: int = 128
    camera_jitter_m: float = 0.02
    camera_jitter_deg: float = 2.0
    light_jitter_m: float = 0.5

    mesh_dir: Path = DEFAULT_MESH_DIR
    """Pretraining objects: ROOT/<category>/**/*.obj|stl (ShapeNet-style folders work)."""
    mesh_up_axis: str = 'z'
    """Which mesh axis points up: 'z' for ours, 'y' for ShapeNet models."""
    num_objects: int = 3
    """Pretraining scene: objects on the table, the first is the instruction's target."""
    object_size_m: tuple[float, float] = (0.05, 0.08)
    """Range of an object's largest extent (uniform per object)."""

    prompt_style: str = 'similar_verbs'
    """Pretraining instructions: similar_verbs, diverse_verbs, unrelated_nouns, nonsense, single."""
    template_file: Path | None = None
    synonym_dir: Path | None = None
    paraphrase_instructions: bool = False
    """Downstream tasks: a random paraphrase per episode instead of LAMP's task phrase."""

    arm: ArmConfig = field(default_factory=ArmConfig)

    def __post_init__(self) -> None:
        for name in ('image_height', 'image_width', 'texture_px', 'num_objects', 'render_scale'):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f'{name} must be a positive integer, got {getattr(self, name)!r}')
        for name in ('control_dt', 'physics_dt'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0 seconds, got {getattr(self, name)}')
        if self.physics_dt > self.control_dt:
            raise ValueError(f'physics_dt {self.physics_dt} must not exceed control_dt {self.control_dt}')
        for name in ('camera_jitter_m', 'camera_jitter_deg', 'light_jitter_m'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        low, high = self.object_size_m
        if not 0 < low <= high:
            raise ValueError(f'object_size_m must be (low, high) with 0 < low <= high, got {self.object_size_m}')
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f'unknown prompt_style {self.prompt_style!r}; choose one of {PROMPT_STYLES}')
        if self.mesh_up_axis not in ('x', 'y', 'z'):
            raise ValueError(f"mesh_up_axis must be 'x', 'y' or 'z', got {self.mesh_up_axis!r}")

    def texture_folder(self, surface: str) -> Path:
        override = getattr(self, f'{surface}_texture_dir')
        return Path(override) if override is not None else Path(self.texture_dir) / surface

    @property
    def instructions(self) -> InstructionConfig:
        return InstructionConfig(self.prompt_style, self.template_file, self.synonym_dir)

    @classmethod
    def from_kwargs(cls, image_size: int | tuple[int, int] | list[int] | None = None,
                    **kwargs: Any) -> SceneConfig:
        """Build from keyword arguments, as gymnasium.make passes them; unknown names are an error.

        `image_size` is a side length or (height, width); `arm` may be an ArmConfig or a dict of its fields.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f'unknown scene option(s) {unknown}; known: {sorted(known | {"image_size"})}')
        if image_size is not None:
            height, width = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
            kwargs.update(image_height=int(height), image_width=int(width))
        if isinstance(kwargs.get('arm'), dict):
            kwargs['arm'] = ArmConfig(**kwargs['arm'])
        for name in ('texture_dir', 'table_texture_dir', 'wall_texture_dir', 'floor_texture_dir', 'mesh_dir',
                     'template_file', 'synonym_dir'):
            if kwargs.get(name) is not None:
                kwargs[name] = Path(kwargs[name])
        return cls(**kwargs)
