"""Randomization assets: mesh and texture folders (your own photos and ShapeNet-style meshes), shipped defaults."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

import sim
from sim.config import DEFAULT_MESH_DIR
from sim.default_assets import ASSETS, box, write_defaults
from sim.meshes import MeshLibrary, TriangleMesh, convex_hull, read_mesh, simplify, standing_on_origin, write_obj
from sim.textures import DEFAULT_TEXTURE_DIR, SURFACES, TextureFolder


def write_binary_stl(path: Path, mesh: TriangleMesh) -> None:
    triangles = mesh.vertices[mesh.faces]
    payload = b''.join(struct.pack('<12fH', 0, 0, 0, *t.reshape(-1), 0) for t in triangles.astype(np.float32))
    path.write_bytes(b'\0' * 80 + struct.pack('<I', len(triangles)) + payload)


def test_obj_and_stl_read_back_the_same_shape(tmp_path: Path) -> None:
    cuboid = box(0.2, 0.1, 0.05)
    (tmp_path / 'a.obj').write_text(write_obj(cuboid))
    write_binary_stl(tmp_path / 'a.stl', cuboid)
    (tmp_path / 'quad.obj').write_text('v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nf 1/1/1 2/2/2 3/3/3 4/4/4\nf -1 -2 -3\n')
    for name in ('a.obj', 'a.stl'):
        mesh = read_mesh(tmp_path / name)
        assert mesh.extent == pytest.approx([0.2, 0.1, 0.05], abs=1e-6)
        assert len(mesh.faces) == 12
    assert len(read_mesh(tmp_path / 'quad.obj').faces) == 3         # a quad fan-triangulated, negative indices
    with pytest.raises(ValueError, match='unsupported'):
        read_mesh(tmp_path / 'a.ply')


def test_normalizing_turns_a_y_up_model_upright_at_the_given_size() -> None:
    tall_along_y = TriangleMesh(box(0.1, 0.1, 0.1).vertices * [1.0, 4.0, 1.0] + [5.0, 5.0, 5.0], box(1, 1, 1).faces)
    upright = standing_on_origin(tall_along_y, 0.08, up_axis='y')
    assert upright.extent == pytest.approx([0.02, 0.02, 0.08])
    assert upright.vertices[:, 2].min() == pytest.approx(0.0)
    assert upright.vertices[:, :2].mean(axis=0) == pytest.approx([0.0, 0.0])


def test_simplify_and_hull_shrink_a_dense_mesh() -> None:
    dense = read_mesh(DEFAULT_MESH_DIR / 'mug' / 'mug_0.obj')
    coarse = simplify(dense, cell_m=0.1)
    hull = convex_hull(dense, max_vertices=16)
    assert len(coarse.faces) < len(dense.faces)
    assert len(hull.vertices) <= 2 * 16 < len(dense.vertices) / 4     # qhull's vertex limit is approximate
    assert hull.extent == pytest.approx(dense.extent, rel=0.1)


def test_shapenet_style_mesh_folder_is_used_by_the_pretraining_scene(tmp_path: Path) -> None:
    for category, shape in (('chair_like', box(0.4, 0.4, 1.0)), ('03797390', box(1.0, 0.5, 0.5))):
        folder = tmp_path / category / 'model_0001' / 'models'
        folder.mkdir(parents=True)
        y_up = TriangleMesh(shape.vertices[:, [1, 2, 0]], shape.faces)   # ShapeNet models are y-up
        (folder / 'model_normalized.obj').write_text(write_obj(y_up))
    synonyms = tmp_path / 'synonyms'
    synonyms.mkdir()
    (synonyms / '03797390.txt').write_text('mug\n')
    library = MeshLibrary(tmp_path, up_axis='y')
    assert library.categories == ('03797390', 'chair_like')
    env = sim.make('pretrain', image_size=16, mesh_dir=tmp_path, mesh_up_axis='y', synonym_dir=synonyms,
                   num_objects=2, object_size_m=(0.06, 0.06))
    _, info = env.reset(seed=0)
    scene = env.unwrapped.scene
    for i in range(2):
        assert scene.data.geom_xpos[scene.model.geom(f'object_{i}').id][2] < 0.06   # standing, not lying
    assert ('mug' in info['instruction']) or ('chair like' in info['instruction'])
    env.close()
    with pytest.raises(FileNotFoundError, match='no .obj/.stl meshes'):
        MeshLibrary(synonyms)


def test_texture_folders_take_any_photo_size(tmp_path: Path) -> None:
    photo = np.zeros((90, 160, 3), np.uint8)
    photo[:, 35:125] = (0, 0, 255)                                       # BGR red centre square
    cv2.imwrite(str(tmp_path / 'frame.jpg'), photo)
    folder = TextureFolder(tmp_path, size_px=32)
    image = folder.sample(np.random.default_rng(0))
    assert image.shape == (32, 32, 3) and image[16, 16, 0] > 200 and image[16, 16, 2] < 50   # cropped, RGB
    with pytest.raises(FileNotFoundError, match='does not exist'):
        TextureFolder(tmp_path / 'missing', 32)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no .png/.jpg/.jpeg images'):
        TextureFolder(tmp_path / 'empty', 32)


def test_user_table_photos_show_up_in_the_front_camera(tmp_path: Path) -> None:
    green = np.zeros((64, 64, 3), np.uint8)
    green[:] = (0, 255, 0)                                               # BGR green
    cv2.imwrite(str(tmp_path / 'green.png'), green)
    env = sim.make('push_button', image_size=32, table_texture_dir=tmp_path)
    image = env.reset(seed=0)[0]['image_front'].astype(int)
    env.close()
    bottom = image[24:, :]                                               # the table fills the lower image
    assert np.mean(bottom[..., 1] > bottom[..., 0] + 40) > 0.5


def test_shipped_defaults_are_small_and_regenerate_exactly(tmp_path: Path) -> None:
    written = write_defaults(tmp_path)
    for path in written:
        shipped = ASSETS / path.relative_to(tmp_path)
        assert shipped.read_bytes() == path.read_bytes(), shipped
    total = sum(p.stat().st_size for p in written)
    assert total < 2_000_000
    for surface in SURFACES:
        assert len(TextureFolder(DEFAULT_TEXTURE_DIR / surface, 32).paths) >= 5
    assert len(MeshLibrary(DEFAULT_MESH_DIR).categories) >= 8
