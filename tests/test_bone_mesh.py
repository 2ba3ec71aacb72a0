"""orthogen.io.bone_mesh: marching-cubes bone surfaces of a CT in world mm, their cleaning, and STL output.

Volumes are checked against known truths: a phantom femur's voxel volume, spheres of known radius and
centre on grids with rotated and flipped affines.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import trimesh

from orthogen.errors import InputError
from orthogen.io import bone_surface_mesh, write_stl
from orthogen.io.bone_mesh import bone_mesh_stats
from orthogen.phantoms.knee import KneePhantom

SEED = 3
FEMUR = 1


def _world(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(X, Y, Z, 3) world mm of every voxel centre."""
    index = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij"), axis=-1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def _spheres_hu(affine, shape, spheres) -> np.ndarray:
    """1000 HU inside the (centre mm, radius mm) spheres, -1000 outside, ramping linearly over ~1 mm at
    each surface (as a CT's partial volume does), so the 200 HU isosurface lies on the true sphere."""
    world = _world(affine, shape)
    distance = np.min([np.linalg.norm(world - np.asarray(centre), axis=-1) - radius for centre, radius in spheres],
                      axis=0)
    return np.clip(200.0 - 800.0 * distance, -1000.0, 1000.0).astype(np.float32)


def _turned(flip: tuple[float, float, float], spacing, degrees: float, origin) -> np.ndarray:
    """A 4x4 affine: axes scaled by ``spacing``, flipped by the signs in ``flip``, turned about z, offset."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag(np.multiply(flip, spacing))
    affine[:3, 3] = origin
    return affine


def test_phantom_femur_mesh_matches_its_voxel_volume_in_world_mm(tmp_path):
    ct = KneePhantom.from_seed(SEED).render((96, 96, 96), (1.5, 1.5, 1.5))
    femur = ct.labels == FEMUR
    # The femur's own CT numbers (cortical shell, cancellous bone partly below 200 HU), alone in air:
    # the cavities' surfaces are dropped, so the mesh is the solid bone the labels paint.
    volume_hu = np.where(femur, ct.volume_hu, -1000.0)
    true_mm3 = femur.sum() * np.prod(ct.spacing)

    path = write_stl(bone_surface_mesh(volume_hu, ct.affine), tmp_path / "femur.stl")
    mesh = trimesh.load(path)

    assert path.stat().st_size == 84 + 50 * len(mesh.faces)  # binary STL: header, count, 50 B per face
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(true_mm3, rel=0.05)
    # The femur is cut by the field of view (its shaft leaves the top): padding closed it.
    index = np.argwhere(femur)
    assert index[:, 2].max() == femur.shape[2] - 1
    corners = np.stack([index.min(axis=0), index.max(axis=0)]).astype(float) @ ct.affine[:3, :3].T + ct.affine[:3, 3]
    low, high = corners.min(axis=0), corners.max(axis=0)
    voxel = np.asarray(ct.spacing)
    assert np.all(mesh.bounds[0] >= low - voxel) and np.all(mesh.bounds[1] <= high + voxel)
    assert np.all(mesh.bounds[0] <= low + voxel) and np.all(mesh.bounds[1] >= high - voxel)  # and fills them


@pytest.mark.parametrize("affine", [
    _turned((-1.0, 1.0, 1.0), (0.9, 0.8, 1.1), 30.0, (40.0, -120.0, 300.0)),  # one axis flipped: det < 0
    _turned((-1.0, -1.0, 1.0), (0.9, 0.8, 1.1), 0.0, (40.0, 30.0, -60.0)),  # LPS-like: two flips
], ids=["flipped-turned", "lps-like"])
def test_sphere_has_its_volume_and_centre_with_outward_normals(affine):
    shape = (40, 44, 36)
    radius = 12.0
    centre = affine[:3, :3] @ (np.array(shape) / 2 - 0.3) + affine[:3, 3]  # off the voxel grid's centres
    volume_hu = _spheres_hu(affine, shape, [(centre, radius)])

    mesh = bone_surface_mesh(volume_hu[None], affine)  # (1, X, Y, Z), as MONAI gives it

    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.03)
    np.testing.assert_allclose(mesh.center_mass, centre, atol=0.1)
    assert np.all(np.abs(np.linalg.norm(mesh.vertices - centre, axis=1) - radius) < 0.2)


def test_cleaning_keeps_the_largest_pieces_and_fills_cavities():
    affine = _turned((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0.0, (0.0, 0.0, 0.0))
    shape = (64, 40, 40)
    big, small = ((18.0, 20.0, 20.0), 12.0), ((46.0, 20.0, 20.0), 9.0)
    volume_hu = _spheres_hu(affine, shape, [big, small])
    assert np.count_nonzero(volume_hu == 200.0) > 100  # voxels exactly at the level: no zero-area faces
    volume_hu[60, 5, 5] = 1000.0  # a one-voxel speck of noise
    volume_hu[18, 20, 20] = -500.0  # a one-voxel cavity (marrow) inside the big sphere
    sphere_mm3 = [4 / 3 * math.pi * r**3 for _, r in (big, small)]

    mesh = bone_surface_mesh(volume_hu, affine)
    stats = bone_mesh_stats(mesh)
    assert stats.components == 2 and stats.watertight
    assert stats.volume_mm3 == pytest.approx(sum(sphere_mm3), rel=0.02)  # the cavity filled, no speck
    assert all(mesh.bounds[1] < 58.0)  # the speck (at x = 60 mm) is gone

    assert bone_mesh_stats(bone_surface_mesh(volume_hu, affine, max_components=1)).volume_mm3 == pytest.approx(
        sphere_mm3[0], rel=0.02)
    everything = bone_surface_mesh(volume_hu, affine, min_component_fraction=0.0, max_components=None)
    assert bone_mesh_stats(everything).components == 3  # the speck too; the cavity is never kept
    with_big_only = bone_surface_mesh(volume_hu, affine, min_component_fraction=0.5)  # 9^3 / 12^3 = 0.42
    assert bone_mesh_stats(with_big_only).components == 1


@pytest.mark.parametrize("volume_hu, affine, field, words", [
    (np.zeros((8, 8), np.float32), np.eye(4), "volume_hu", "expected an (X, Y, Z)"),
    (np.full((8, 8, 8), np.nan, np.float32), np.eye(4), "volume_hu", "NaN"),
    (np.full((8, 8, 8), 100.0, np.float32), np.eye(4), "volume_hu", "no voxel above 200 HU: no bone to mesh"),
    (np.full((8, 8, 8), 1000.0, np.float32), np.diag([1.0, 0.0, 1.0, 1.0]), "affine", "invertible"),
    (np.full((8, 8, 8), 1000.0, np.float32), np.eye(3), "affine", "4x4"),
    (np.full((8, 8, 8), 1000.0, np.float32), np.full((4, 4), np.inf), "affine", "NaN or infinite"),
])
def test_bad_inputs_name_their_field(volume_hu, affine, field, words):
    with pytest.raises(InputError, match=re.escape(words)) as raised:
        bone_surface_mesh(volume_hu, affine)
    assert raised.value.source == field
    assert "\n" not in str(raised.value)


def test_a_volume_all_bone_is_a_closed_box():
    mesh = bone_surface_mesh(np.full((4, 5, 6), 1000.0, np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    assert mesh.is_watertight and mesh.volume > 0
    # The padding's air is 1 voxel (2 mm) out; 200 HU lies (1000 - 200) / (1000 + 1024) of the way to it.
    reach = 2.0 * 800.0 / 2024.0
    np.testing.assert_allclose(mesh.bounds, [[-reach] * 3, [6.0 + reach, 8.0 + reach, 10.0 + reach]], atol=1e-5)


@pytest.mark.parametrize("edge", [32, 33, 34])
@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_bone_cut_by_the_field_of_view_closes_at_every_step_size(edge, step):
    """A rod through the whole volume: both cut ends must close for any marching-cubes step (a step of 2
    on an even padded size once skipped the last air layer and left the far end open)."""
    volume = np.full((edge, edge, edge), -1000.0, np.float32)
    across = np.arange(edge) - edge / 2
    volume[(across[:, None] ** 2 + across[None, :] ** 2 < 40)] = 1000.0  # a rod along the last axis
    mesh = bone_surface_mesh(volume, np.eye(4), step_size=step)
    assert mesh.is_watertight
    assert 0.7 < mesh.volume / float((volume > 200).sum()) < 1.0  # coarser steps cut corners


def test_a_failed_stl_write_leaves_nothing(tmp_path, monkeypatch):
    mesh = trimesh.creation.icosphere()

    def half_write_then_fail(self, file_obj=None, file_type=None, **kwargs):
        with open(file_obj, "wb") as partial:
            partial.write(b"solid half")
        raise OSError("disk full")

    monkeypatch.setattr(trimesh.Trimesh, "export", half_write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_stl(mesh, tmp_path / "bone.stl")
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(OSError):
        write_stl(mesh, tmp_path / "a-file" / "bone.stl")  # the parent is a file
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]

    with pytest.raises(InputError, match=r"expected a \.stl file name") as raised:
        write_stl(mesh, tmp_path / "bone.obj")
    assert raised.value.source == str(tmp_path / "bone.obj")
