"""The pretraining scene: several objects from a mesh folder, one of them the instruction's target.

Each episode draws `num_objects` meshes (distinct categories where possible), scales each to a
random size, gives it a random colour, yaw and place on the table, and samples an instruction
from the templates with [NOUN] filled by a synonym of the target's category (sim/instructions.py).
LAMP pretrains with a video-language reward instead of a task reward; the shaped pick-up reward
and success test here (the target lifted) are for diagnostics and baselines.
"""
from __future__ import annotations

import mujoco
import numpy as np

from sim.instructions import InstructionSampler
from sim.meshes import MeshEntry, MeshLibrary, TriangleMesh, simplify
from sim.robot import PandaArm
from sim.tasks.base import LIFT_GOAL_M, LIFT_SUCCESS_M, EpisodeInfo, Task, lift_reward, random_colour, yaw_quat

PLACEMENT_LOW, PLACEMENT_HIGH = (0.34, -0.22), (0.62, 0.22)
MIN_GAP_M = 0.02
MAX_MESH_FACES = 3000          # denser meshes are simplified: the software renderer pays per triangle


class Pretrain(Task):
    name = 'pretrain'
    phrases = ('pick up the object',)

    def __init__(self, library: MeshLibrary, instructions: InstructionSampler, num_objects: int,
                 size_range_m: tuple[float, float]) -> None:
        super().__init__()
        self.library, self.instructions = library, instructions
        self.num_objects, self.size_range_m = num_objects, size_range_m
        self.objects: list[MeshEntry] = []

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, episode: EpisodeInfo) -> None:
        self.objects = self.library.sample(rng, self.num_objects)
        sizes = rng.uniform(*self.size_range_m, size=self.num_objects)
        positions = self._place(rng, sizes / 2)
        self.rest_positions = []
        for i, (entry, size, xy) in enumerate(zip(self.objects, sizes, positions)):
            mesh = self.library.mesh(entry)
            if len(mesh.faces) > MAX_MESH_FACES:
                mesh = simplify(mesh, cell_m=1.0 / 40)
            mesh = TriangleMesh(mesh.vertices * size, mesh.faces)
            spec.add_mesh(name=f'object_{i}', uservert=mesh.vertices.reshape(-1).tolist(),
                          userface=mesh.faces.reshape(-1).tolist(), inertia=mujoco.mjtMeshInertia.mjMESH_INERTIA_CONVEX)
            position = [*xy, 0.001]
            self.rest_positions.append(np.array(position))
            body = spec.worldbody.add_body(name=f'object_{i}', pos=position, quat=yaw_quat(rng.uniform(-np.pi, np.pi)))
            body.add_freejoint(name=f'object_{i}')
            body.add_geom(name=f'object_{i}', type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f'object_{i}', mass=0.1,
                          condim=4, friction=[1.0, 0.01, 0.001],
                          rgba=random_colour(rng, episode.randomize, (0.8, 0.5, 0.2)))

    def _place(self, rng: np.random.Generator, radii: np.ndarray) -> list[np.ndarray]:
        """Rejection-sample non-overlapping table positions for objects of these radii."""
        placed: list[np.ndarray] = []
        for radius in radii:
            for _ in range(500):
                xy = rng.uniform(PLACEMENT_LOW, PLACEMENT_HIGH)
                if all(np.linalg.norm(xy - other) >= radius + r + MIN_GAP_M for other, r in zip(placed, radii)):
                    placed.append(xy)
                    break
            else:
                raise ValueError(f'cannot place {len(radii)} objects of up to {2 * radii.max():.2f} m apart on the '
                                 'table; lower num_objects or object_size_m')
        return placed

    def bind(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        super().bind(model, data)
        self._target_body = model.body('object_0').id
        self._target_geom = model.geom('object_0').id

    @property
    def target_category(self) -> str:
        return self.objects[0].category

    def target_centre(self) -> np.ndarray:
        """Centre of mass of the target object."""
        return self.data.geom_xpos[self._target_geom].copy()

    def lifted(self) -> float:
        return float(self.data.xpos[self._target_body][2] - self.rest_positions[0][2])

    def reward(self, arm: PandaArm) -> float:
        goal = self.rest_positions[0] + [0.0, 0.0, LIFT_GOAL_M]
        centre = self.target_centre()
        return lift_reward(arm.grasps({self._target_body}), arm.ee_position(), centre, centre, goal)

    def success(self, arm: PandaArm) -> bool:
        return self.lifted() >= LIFT_SUCCESS_M and arm.grasps({self._target_body})

    def instruction(self, rng: np.random.Generator, episode: EpisodeInfo, paraphrase: bool) -> str:
        return self.instructions.instruction(self.target_category, episode.base_seed, episode.index, rng)
