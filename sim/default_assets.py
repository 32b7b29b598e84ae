"""Generate the shipped default randomization assets: surface textures and object meshes.

    python -m sim.default_assets [--out sim/assets]

Everything is procedural and seeded, so the files in sim/assets/textures and sim/assets/meshes can be
regenerated exactly. They are small stand-ins: point the scene config at folders of real photos
(e.g. Ego4D frames) and ShapeNet-style meshes for real variety (docs/sim.md).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lamp_ros.fileio import atomic_write_bytes, atomic_write_text
from sim.meshes import TriangleMesh, write_obj

TEXTURE_PX = 128
ASSETS = Path(__file__).resolve().parent / 'assets'
Image = np.ndarray


# ---------------------------------------------------------------------- textures

def _value_noise(rng: np.random.Generator, cells: int, px: int = TEXTURE_PX) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid upsampled bicubically (tileable enough for our use)."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (px, px), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _mix(t: np.ndarray, dark: np.ndarray, light: np.ndarray) -> Image:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return (dark * (1 - t) + light * t).astype(np.uint8)


def _colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, 3) * 255


def wood(rng: np.random.Generator) -> Image:
    y, x = np.mgrid[0:TEXTURE_PX, 0:TEXTURE_PX] / TEXTURE_PX
    warp = _value_noise(rng, 4) * rng.uniform(2, 5)
    rings = np.sin(2 * np.pi * (rng.uniform(6, 14) * (x + 0.15 * np.sin(3 * y)) + warp))
    base = np.array([rng.uniform(0.45, 0.75), rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.3)]) * 255
    return _mix(0.5 + 0.5 * rings * 0.6 + 0.2 * _value_noise(rng, 32), base * 0.6, base)


def marble(rng: np.random.Generator) -> Image:
    y, x = np.mgrid[0:TEXTURE_PX, 0:TEXTURE_PX] / TEXTURE_PX
    turbulence = sum(_value_noise(rng, c) / i for i, c in ((1, 4), (2, 8), (4, 16)))
    veins = np.abs(np.sin(2 * np.pi * (x + y + 2.0 * turbulence)))
    light = _colour(rng, 0.75, 0.98)
    return _mix(veins ** 0.3, light * rng.uniform(0.4, 0.7), light)


def tiles(rng: np.random.Generator) -> Image:
    count = int(rng.choice([4, 8]))
    cell = TEXTURE_PX // count
    base = _colour(rng, 0.3, 0.95)
    image = np.empty((TEXTURE_PX, TEXTURE_PX, 3))
    for i in range(count):
        for j in range(count):
            image[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell] = base * rng.uniform(0.85, 1.1)
    grout = np.zeros((TEXTURE_PX, TEXTURE_PX), bool)
    grout[np.arange(TEXTURE_PX) % cell < 2, :] = True
    grout[:, np.arange(TEXTURE_PX) % cell < 2] = True
    image[grout] = _colour(rng, 0.2, 0.6)
    return np.clip(image, 0, 255).astype(np.uint8)


def checker(rng: np.random.Generator) -> Image:
    count = int(rng.choice([2, 4, 8]))
    y, x = np.mgrid[0:TEXTURE_PX, 0:TEXTURE_PX] * count // TEXTURE_PX
    return _mix(((x + y) % 2).astype(np.float32), _colour(rng, 0.05, 0.5), _colour(rng, 0.5, 1.0))


def stripes(rng: np.random.Generator) -> Image:
    y, x = np.mgrid[0:TEXTURE_PX, 0:TEXTURE_PX] / TEXTURE_PX
    angle = rng.uniform(0, np.pi)
    wave = np.sin(2 * np.pi * rng.choice([4, 6, 8]) * (np.cos(angle) * x + np.sin(angle) * y))
    return _mix((wave > 0).astype(np.float32), _colour(rng, 0.2, 0.7), _colour(rng, 0.6, 1.0))


def speckle(rng: np.random.Generator) -> Image:
    base = _colour(rng, 0.3, 0.9)
    fine = rng.random((TEXTURE_PX, TEXTURE_PX)).astype(np.float32)
    return _mix(0.6 * _value_noise(rng, 8) + 0.4 * fine, base * 0.7, np.minimum(base * 1.2, 255))


def brick(rng: np.random.Generator) -> Image:
    rows, cols = 8, 4
    height, width = TEXTURE_PX // rows, TEXTURE_PX // cols
    base = np.array([rng.uniform(0.5, 0.8), rng.uniform(0.2, 0.4), rng.uniform(0.15, 0.3)]) * 255
    image = np.empty((TEXTURE_PX, TEXTURE_PX, 3))
    for r in range(rows):
        shift = (width // 2) * (r % 2)
        for c in range(-1, cols + 1):
            x0, x1 = max(0, c * width + shift), min(TEXTURE_PX, (c + 1) * width + shift)
            if x0 < x1:
                image[r * height:(r + 1) * height, x0:x1] = base * rng.uniform(0.8, 1.15)
            image[r * height:(r + 1) * height, max(0, min(TEXTURE_PX - 1, x0))] = 200
        image[r * height, :] = 200
    return np.clip(image * (0.9 + 0.2 * _value_noise(rng, 32))[..., None], 0, 255).astype(np.uint8)


def plaster(rng: np.random.Generator) -> Image:
    base = _colour(rng, 0.6, 0.97)
    return _mix(_value_noise(rng, 16) * 0.5 + _value_noise(rng, 64) * 0.5, base * 0.85, base)


def dots(rng: np.random.Generator) -> Image:
    image = np.empty((TEXTURE_PX, TEXTURE_PX, 3), np.uint8)
    image[:] = _colour(rng, 0.5, 1.0)
    spacing = int(rng.choice([16, 32]))
    dot = tuple(float(v) for v in _colour(rng, 0.0, 0.6))
    for cy in range(spacing // 2, TEXTURE_PX, spacing):
        for cx in range(spacing // 2, TEXTURE_PX, spacing):
            cv2.circle(image, (cx, cy), spacing // 5, dot, -1, lineType=cv2.LINE_AA)
    return image


def planks(rng: np.random.Generator) -> Image:
    image = wood(rng).astype(np.float32)
    for row in range(0, TEXTURE_PX, TEXTURE_PX // 4):
        image[row:row + TEXTURE_PX // 4] *= rng.uniform(0.8, 1.1)
        image[row] = 40
    return np.clip(image, 0, 255).astype(np.uint8)


TEXTURES: dict[str, tuple[Callable[[np.random.Generator], Image], ...]] = {
    'table': (wood, wood, marble, tiles, checker, speckle),
    'wall': (brick, plaster, plaster, stripes, dots, tiles),
    'floor': (planks, tiles, checker, speckle, marble, stripes),
}


# ---------------------------------------------------------------------- meshes

def revolve(profile: list[tuple[float, float]], segments: int = 20) -> TriangleMesh:
    """Solid of revolution about z. `profile` is (radius, z) from the bottom pole (radius 0) around the
    boundary of the cross-section to the last point (radius 0): a closed surface, outward-facing."""
    vertices: list[tuple[float, float, float]] = []
    rings: list[list[int]] = []
    angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    for radius, z in profile:
        if radius == 0:
            vertices.append((0.0, 0.0, z))
            rings.append([len(vertices) - 1] * segments)
        else:
            rings.append(list(range(len(vertices), len(vertices) + segments)))
            vertices.extend((radius * np.cos(a), radius * np.sin(a), z) for a in angles)
    faces = []
    for lower, upper in zip(rings, rings[1:]):
        for k in range(segments):
            a0, a1, b0, b1 = lower[k], lower[(k + 1) % segments], upper[k], upper[(k + 1) % segments]
            for face in ((a0, a1, b1), (a0, b1, b0)):
                if len(set(face)) == 3:
                    faces.append(face)
    return TriangleMesh(np.asarray(vertices), np.asarray(faces, dtype=np.int32))


def merge(*meshes: TriangleMesh) -> TriangleMesh:
    vertices, faces, offset = [], [], 0
    for mesh in meshes:
        vertices.append(mesh.vertices)
        faces.append(mesh.faces + offset)
        offset += len(mesh.vertices)
    return TriangleMesh(np.vstack(vertices), np.vstack(faces).astype(np.int32))


def handle(radius: float, height: float, z_centre: float, thickness: float, segments: int = 10) -> TriangleMesh:
    """A closed tube bent into a half ring on the +x side of a vessel of the given radius."""
    ring = []
    for t in np.linspace(-np.pi / 2, np.pi / 2, segments):
        centre = np.array([radius + 0.5 * height * np.cos(t) * 0.8, 0.0, z_centre + 0.5 * height * np.sin(t)])
        normal = np.array([np.cos(t), 0.0, np.sin(t)])
        ring.append([centre + thickness * (np.cos(a) * normal + np.sin(a) * np.array([0, 1, 0]))
                     for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)])
    vertices = np.asarray(ring).reshape(-1, 3)
    faces = []
    for i in range(segments - 1):
        for k in range(8):
            a0, a1 = i * 8 + k, i * 8 + (k + 1) % 8
            b0, b1 = a0 + 8, a1 + 8
            faces += [(a0, b1, a1), (a0, b0, b1)]
    return TriangleMesh(vertices, np.asarray(faces, dtype=np.int32))


def translated(mesh: TriangleMesh, offset: tuple[float, float, float]) -> TriangleMesh:
    return TriangleMesh(mesh.vertices + np.asarray(offset), mesh.faces)


def box(width: float, depth: float, height: float) -> TriangleMesh:
    x, y = width / 2, depth / 2
    vertices = np.array([[-x, -y, 0], [x, -y, 0], [x, y, 0], [-x, y, 0],
                         [-x, -y, height], [x, -y, height], [x, y, height], [-x, y, height]])
    faces = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                      [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]], dtype=np.int32)
    return TriangleMesh(vertices, faces)


def vessel(radius: float, height: float, wall: float, flare: float = 0.0) -> list[tuple[float, float]]:
    """Profile of an open cup-like vessel: outside up, over the rim, inside down."""
    top = radius * (1 + flare)
    return [(0, 0), (radius, 0), (top, height), (top - wall, height), (radius - wall, wall), (0, wall)]


def mesh_variants(rng: np.random.Generator) -> dict[str, list[TriangleMesh]]:
    u = rng.uniform
    return {
        'bowl': [revolve([(0, 0), (0.3, 0), (0.8, 0.2), (1.0, 0.45), (0.93, 0.45), (0.75, 0.24), (0.28, 0.06), (0, 0.06)]),
                 revolve([(0, 0), (0.4, 0), (0.9, 0.3), (1.0, 0.6), (0.94, 0.6), (0.84, 0.32), (0.36, 0.07), (0, 0.07)])],
        'bottle': [revolve([(0, 0), (0.3, 0), (0.3, 0.6), (0.12, 0.75), (0.12, 1.0), (0, 1.0)]),
                   revolve([(0, 0), (0.35, 0), (0.38, 0.35), (0.32, 0.62), (0.1, 0.8), (0.1, 1.0), (0, 1.0)])],
        'box': [box(1.0, u(0.5, 0.8), u(0.4, 0.7)), box(1.0, 1.0, u(0.8, 1.0))],
        'can': [revolve([(0, 0), (0.38, 0), (0.4, 0.03), (0.4, 0.97), (0.37, 1.0), (0, 1.0)]),
                revolve([(0, 0), (0.5, 0), (0.5, 0.75), (0, 0.75)])],
        'jar': [revolve([(0, 0), (0.45, 0), (0.5, 0.15), (0.5, 0.7), (0.36, 0.8), (0.36, 0.95), (0, 0.95)]),
                revolve([(0, 0), (0.5, 0), (0.55, 0.5), (0.4, 0.65), (0.42, 0.78), (0, 0.78)])],
        'mug': [merge(revolve(vessel(0.4, 1.0, 0.05)), handle(0.4, 0.6, 0.5, 0.05)),
                merge(revolve(vessel(0.45, 0.85, 0.05, 0.1)), handle(0.47, 0.5, 0.45, 0.05))],
        'pot': [merge(revolve(vessel(0.5, 0.5, 0.03)), translated(box(0.5, 0.1, 0.05), (0.72, 0.0, 0.38))),
                merge(revolve(vessel(0.5, 0.6, 0.03)), handle(0.5, 0.3, 0.4, 0.04))],
        'vase': [revolve([(0, 0), (0.3, 0), (0.45, 0.35), (0.25, 0.75), (0.3, 1.0), (0.26, 1.0), (0.2, 0.75), (0, 0.75)]),
                 revolve([(0, 0), (0.35, 0), (0.4, 0.5), (0.15, 0.85), (0.2, 1.0), (0.16, 1.0), (0.1, 0.85), (0, 0.85)])],
    }


def write_defaults(out: Path, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    written = []
    for surface, makers in TEXTURES.items():
        folder = out / 'textures' / surface
        folder.mkdir(parents=True, exist_ok=True)
        for i, make in enumerate(makers):
            path = folder / f'{surface}_{i}_{make.__name__}.png'
            ok, png = cv2.imencode('.png', cv2.cvtColor(make(rng), cv2.COLOR_RGB2BGR))
            if not ok:
                raise RuntimeError(f'PNG encoding failed for {path}')
            atomic_write_bytes(path, png.tobytes())
            written.append(path)
    for category, meshes in mesh_variants(rng).items():
        folder = out / 'meshes' / category
        folder.mkdir(parents=True, exist_ok=True)
        for i, mesh in enumerate(meshes):
            path = folder / f'{category}_{i}.obj'
            atomic_write_text(path, write_obj(mesh))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=ASSETS, help='assets folder (default: sim/assets)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_defaults(args.out, args.seed):
        print(path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
