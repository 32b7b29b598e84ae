"""Triangle meshes from files (OBJ, STL): read, simplify, normalize, and the object-mesh library.

MuJoCo could read the files itself, but we need the vertices in hand: to scale an arbitrary
(ShapeNet-style) model to a chosen size, stand it on the table, and to simplify the robot's dense
gripper meshes, whose 56k triangles would otherwise dominate the software renderer's frame time.
Meshes are handed to MuJoCo as vertex/face arrays, so nothing is read from disk at compile time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

MESH_SUFFIXES = ('.obj', '.stl')


@dataclass(frozen=True)
class TriangleMesh:
    vertices: np.ndarray      # (V, 3) float64
    faces: np.ndarray         # (F, 3) int32, counter-clockwise seen from outside

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or len(self.vertices) < 4:
            raise ValueError(f'a mesh needs at least 4 vertices of 3 coordinates, got shape {self.vertices.shape}')
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError(f'a mesh needs triangles (F, 3), got shape {self.faces.shape}')
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise ValueError('mesh faces index vertices that do not exist')
        if not np.all(np.isfinite(self.vertices)):
            raise ValueError('mesh vertices must be finite')

    @property
    def extent(self) -> np.ndarray:
        """Axis-aligned bounding-box size, (3,)."""
        return self.vertices.max(axis=0) - self.vertices.min(axis=0)


def read_mesh(path: Path) -> TriangleMesh:
    """Read a Wavefront OBJ (polygons are fan-triangulated) or an STL file (binary or ASCII)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == '.obj':
        return _read_obj(path)
    if suffix == '.stl':
        return _read_stl(path)
    raise ValueError(f'{path}: unsupported mesh format {suffix!r}; use one of {MESH_SUFFIXES}')


def _read_obj(path: Path) -> TriangleMesh:
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    for line in path.read_text(errors='replace').splitlines():
        if line.startswith('v '):
            vertices.append([float(x) for x in line.split()[1:4]])
        elif line.startswith('f '):
            # 'f 1/1/1 2/2/2 3/3/3 ...': the vertex index comes first; negative indices count from the end.
            corners = [int(token.split('/')[0]) for token in line.split()[1:]]
            corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
            faces.extend([corners[0], corners[i], corners[i + 1]] for i in range(1, len(corners) - 1))
    if not vertices or not faces:
        raise ValueError(f'{path}: no vertices or faces found in OBJ file')
    return TriangleMesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int32))


def _read_stl(path: Path) -> TriangleMesh:
    raw = path.read_bytes()
    count = int(np.frombuffer(raw, dtype='<u4', count=1, offset=80)[0]) if len(raw) >= 84 else -1
    if count >= 0 and len(raw) == 84 + 50 * count:             # binary: 50 bytes per triangle
        record = np.dtype([('normal', '<f4', 3), ('corners', '<f4', (3, 3)), ('attribute', '<u2')])
        corners = np.frombuffer(raw, dtype=record, count=count, offset=84)['corners'].reshape(-1, 3)
    else:                                                       # ASCII: 'vertex x y z' lines
        corners = np.array([line.split()[1:4] for line in raw.decode(errors='replace').splitlines()
                            if line.strip().startswith('vertex')], dtype=np.float64).reshape(-1, 3)
    if len(corners) == 0:
        raise ValueError(f'{path}: no triangles found in STL file')
    vertices, inverse = np.unique(corners.astype(np.float64), axis=0, return_inverse=True)
    return TriangleMesh(vertices, inverse.reshape(-1, 3).astype(np.int32))


def simplify(mesh: TriangleMesh, cell_m: float) -> TriangleMesh:
    """Vertex clustering: merge all vertices within each `cell_m` grid cell, drop collapsed triangles.

    Crude but robust, and good enough for small renders: a 2 mm grid keeps a gripper part's silhouette
    while cutting its triangle count by 10-50x.
    """
    if not cell_m > 0:
        raise ValueError(f'cell_m must be > 0, got {cell_m}')
    keys = np.floor(mesh.vertices / cell_m).astype(np.int64)
    _, cluster = np.unique(keys, axis=0, return_inverse=True)
    cluster = cluster.reshape(-1)
    counts = np.bincount(cluster)
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, cluster, mesh.vertices)
    merged /= counts[:, None]
    faces = cluster[mesh.faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)   # drop duplicates, keep winding
    return TriangleMesh(merged, faces[np.sort(first)].astype(np.int32))


def convex_hull(mesh: TriangleMesh, max_vertices: int) -> TriangleMesh:
    """The mesh's convex hull with at most `max_vertices` vertices, computed by MuJoCo (qhull).

    MuJoCo collides meshes as their convex hulls anyway, so a hull changes nothing physically; as a
    visual it costs a few hundred triangles instead of thousands.
    """
    spec = mujoco.MjSpec()
    spec.add_mesh(name='mesh', uservert=mesh.vertices.reshape(-1).tolist(), userface=mesh.faces.reshape(-1).tolist(),
                  maxhullvert=max_vertices)
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname='mesh')
    model = spec.compile()
    graph = model.mesh_graph[model.mesh_graphadr[0]:]
    vertex_count, face_count = int(graph[0]), int(graph[1])
    # graph layout: counts, vert_edgeadr[nv], vert_globalid[nv], edge_localid[nv + 3 nf - 6], face_globalid[3 nf]
    start = 2 + 2 * vertex_count + vertex_count + 3 * face_count - 6
    faces = np.asarray(graph[start:start + 3 * face_count]).reshape(-1, 3)
    used, inverse = np.unique(faces, return_inverse=True)   # MuJoCo keeps the input vertex order
    return TriangleMesh(mesh.vertices[used], inverse.reshape(-1, 3).astype(np.int32))


def standing_on_origin(mesh: TriangleMesh, size_m: float, up_axis: str = 'z') -> TriangleMesh:
    """The mesh rotated so `up_axis` points up (+z), scaled so its largest extent is `size_m`,
    centred in x/y and resting on z = 0."""
    if up_axis not in ('x', 'y', 'z'):
        raise ValueError(f"up_axis must be 'x', 'y' or 'z', got {up_axis!r}")
    if not size_m > 0:
        raise ValueError(f'size_m must be > 0, got {size_m}')
    # Cyclic axis permutations are proper rotations, so triangle winding (outside) is kept.
    order = {'z': [0, 1, 2], 'y': [2, 0, 1], 'x': [1, 2, 0]}[up_axis]
    vertices = mesh.vertices[:, order]
    largest = float(np.max(vertices.max(axis=0) - vertices.min(axis=0)))
    if not largest > 0:
        raise ValueError('mesh has zero size')
    vertices = vertices * (size_m / largest)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    vertices = vertices - np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]])
    return TriangleMesh(vertices, mesh.faces)


def write_obj(mesh: TriangleMesh) -> str:
    """The mesh as OBJ text (vertices with 5 decimals, 1-based faces)."""
    lines = [f'v {x:.5f} {y:.5f} {z:.5f}' for x, y, z in mesh.vertices]
    lines += [f'f {a + 1} {b + 1} {c + 1}' for a, b, c in mesh.faces]
    return '\n'.join(lines) + '\n'


@dataclass(frozen=True)
class MeshEntry:
    category: str             # the folder name: the key into the synonym lists ('mug', 'bowl', ...)
    path: Path


class MeshLibrary:
    """Object meshes in a folder tree `ROOT/<category>/**/<model>.obj|.stl`.

    That is the ShapeNet layout (`ROOT/<synset or name>/<model id>/models/model_normalized.obj`) as
    well as ours (`ROOT/mug/mug_0.obj`). Meshes are read on first use and kept.
    """

    def __init__(self, root: Path, up_axis: str = 'z') -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f'mesh folder {self.root} does not exist')
        self.up_axis = up_axis
        entries = []
        for category_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(category_dir.rglob('*')):
                if path.suffix.lower() in MESH_SUFFIXES and path.is_file():
                    entries.append(MeshEntry(category_dir.name, path))
        if not entries:
            raise FileNotFoundError(f'no {"/".join(MESH_SUFFIXES)} meshes under {self.root}/<category>/')
        self.entries: tuple[MeshEntry, ...] = tuple(entries)
        self.categories: tuple[str, ...] = tuple(sorted({e.category for e in entries}))
        self._meshes: dict[Path, TriangleMesh] = {}

    def mesh(self, entry: MeshEntry) -> TriangleMesh:
        """The entry's mesh standing upright on z = 0 with largest extent 1 (scale it when placing)."""
        if entry.path not in self._meshes:
            self._meshes[entry.path] = standing_on_origin(read_mesh(entry.path), 1.0, self.up_axis)
        return self._meshes[entry.path]

    def sample(self, rng: np.random.Generator, count: int) -> list[MeshEntry]:
        """`count` entries of distinct categories where possible (the first one is the episode's target)."""
        if count < 1:
            raise ValueError(f'count must be >= 1, got {count}')
        categories = list(rng.permutation(self.categories))
        while len(categories) < count:                                # fewer categories than objects
            categories.append(self.categories[int(rng.integers(len(self.categories)))])
        chosen = []
        for category in categories[:count]:
            options = [e for e in self.entries if e.category == category]
            chosen.append(options[int(rng.integers(len(options)))])
        return chosen
