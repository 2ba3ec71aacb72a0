"""Bone surface meshes of a CT, for surgical planning and 3D printing: marching cubes at a bone
threshold, in world millimetres, cleaned to the largest bone pieces, written as binary STL.

Units: the volume is in Hounsfield units (HU), the threshold too (200 HU by default: above fat, muscle
and most marrow, below cortical bone); vertices are in RAS world mm, through the CT's voxel index ->
RAS mm affine, so the mesh overlays the CT it came from in any viewer that uses its affine.

The isosurface is scikit-image's ``measure.marching_cubes`` (Lewiner et al. 2003's topologically
consistent variant of Lorensen & Cline 1987, "Marching cubes: a high resolution 3D surface
construction algorithm", SIGGRAPH). The volume is first padded with air (-1024 HU) on every side, one
voxel before and, after, as many as put marching cubes' last sample (every ``step_size``-th voxel) on
air: a bone cut by the field of view (a femoral shaft leaving the top of a knee scan) would otherwise
end in an open hole, and a printer or a volume measurement needs a closed (watertight) surface. The
pad shifts voxel indices by one, which is undone before the affine. Faces are wound so that normals
point out of the bone (a positive enclosed volume) for any affine: one with negative diagonal entries
(LPS-like flips) turns the winding inside out when it flips an odd number of axes (determinant < 0),
and the faces are then reversed.

Cleaning keeps whole connected surfaces (trimesh's face-connectivity split): the outer surfaces of the
largest pieces by enclosed volume (``max_components`` of them, each at least ``min_component_fraction``
of the largest), dropping specks of noise, calcifications and the inner surfaces of cavities
(cancellous bone or marrow below the threshold), so that each piece is a solid model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from orthogen.errors import InputError
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_file

#: CT number of the voxels padded around the volume so that every surface closes, HU.
AIR_HU = -1024.0


@dataclass(frozen=True)
class BoneMeshStats:
    """What a bone mesh is, for logging.

    Attributes:
        volume_mm3: enclosed volume, mm^3 (positive when the normals point outward).
        components: number of connected surfaces.
        watertight: every edge is shared by exactly two faces (the mesh bounds a solid).
        vertices, faces: counts.
    """

    volume_mm3: float
    components: int
    watertight: bool
    vertices: int
    faces: int


def bone_mesh_stats(mesh: trimesh.Trimesh) -> BoneMeshStats:
    """Enclosed volume (mm^3), component count, watertightness and size of ``mesh``."""
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    components = int(labels.max()) + 1 if len(labels) else 0
    return BoneMeshStats(float(mesh.volume), components, bool(mesh.is_watertight), len(mesh.vertices),
                         len(mesh.faces))


def bone_surface_mesh(volume_hu, affine, threshold_hu: float = 200.0, min_component_fraction: float = 0.05,
                      max_components: int | None = 4, step_size: int = 1) -> trimesh.Trimesh:
    """The surface of the voxels above ``threshold_hu``, in RAS world mm, cleaned to the largest pieces.

    Args:
        volume_hu: (X, Y, Z) or (1, X, Y, Z) CT in HU, numpy or torch; finite.
        affine: (4, 4) voxel index -> RAS world mm (any rotation, spacing or flip; finite, invertible).
        threshold_hu: the isosurface level, HU; voxels above it are bone. Must be above air (-1024 HU).
        min_component_fraction: drop a piece whose enclosed volume is below this fraction of the
            largest piece's (0 keeps every piece, up to ``max_components``).
        max_components: keep at most this many pieces, largest first (4: femur, tibia, fibula and
            patella of a knee); None keeps all that pass ``min_component_fraction``.
        step_size: marching cubes' voxel step (skimage's ``step_size``): 2 samples every other voxel,
            about 4x fewer faces (a 512^3 CT's full-resolution bone surface is several million faces).

    Returns:
        A watertight ``trimesh.Trimesh`` (vertices in mm) of one or more closed surfaces with outward
        normals; its ``volume`` is the enclosed volume in mm^3.

    Raises:
        InputError: the volume is not 3-D or not finite, the affine is not a finite invertible 4x4
            matrix, an option is out of range, or no voxel is above the threshold.
    """
    volume = numpy_array(volume_hu, "volume_hu")
    if volume.ndim == 4 and volume.shape[0] == 1:
        volume = volume[0]
    if volume.ndim != 3:
        raise InputError(f"expected an (X, Y, Z) or (1, X, Y, Z) volume, got shape {volume.shape}", "volume_hu")
    matrix = _affine(affine)
    threshold = float(threshold_hu)
    if not (np.isfinite(threshold) and threshold > AIR_HU):
        raise InputError(f"expected a finite threshold above air ({AIR_HU:g} HU), got {threshold_hu}", "threshold_hu")
    if not 0.0 <= float(min_component_fraction) <= 1.0:
        raise InputError(f"expected a fraction in [0, 1], got {min_component_fraction}", "min_component_fraction")
    if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
        raise InputError(f"expected a whole number >= 1, got {step_size!r}", "step_size")
    if max_components is not None and int(max_components) < 1:
        raise InputError(f"expected at least 1 or None, got {max_components}", "max_components")
    if not np.any(volume > threshold):
        raise InputError(f"no voxel above {threshold:g} HU: no bone to mesh (highest is {float(volume.max()):g} HU)",
                         "volume_hu")

    # One voxel of air before each axis and enough after it that marching cubes, sampling every
    # step_size-th voxel from index 0, lands on air at the end too: with a one-voxel pad a step of 2 skips
    # the last (air) layer whenever the padded size is even, and the surface stays open there.
    after = [1 + (-(n + 1)) % step_size for n in volume.shape]
    padded = np.pad(volume.astype(np.float32), [(1, a) for a in after], constant_values=AIR_HU)  # marching cubes' type
    # "ascent" winds the faces so that, in the (X, Y, Z) index frame, normals point from high HU to
    # low: out of the bone (skimage's default "descent" would give a negative enclosed volume).
    # allow_degenerate=False: a voxel exactly at the level puts several cube edges' vertices on one grid
    # point; skimage then merges them and drops the zero-area faces, instead of leaving them to break
    # the surface into single-face pieces once trimesh (or an STL reader) merges coincident vertices.
    vertices, faces, _, _ = marching_cubes(padded, level=threshold, gradient_direction="ascent",
                                           allow_degenerate=False, step_size=step_size)
    del padded
    vertices = (vertices.astype(np.float64) - 1.0) @ matrix[:3, :3].T + matrix[:3, 3]  # undo the pad
    if np.linalg.det(matrix[:3, :3]) < 0:
        faces = faces[:, ::-1]  # a handedness flip turns the winding inside out
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    return _largest_components(mesh, float(min_component_fraction), max_components)


def write_stl(mesh: trimesh.Trimesh, path: str | Path) -> Path:
    """Write ``mesh`` (vertices in mm) to ``path`` as binary STL and return the path.

    Written to a temporary sibling and renamed, so a failed write leaves no partial file; the parent
    folder is created when missing.
    """
    target = Path(path)
    if target.suffix.lower() != ".stl":
        raise InputError(f"expected a .stl file name, got {target.name!r}", target)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"expected a trimesh.Trimesh with faces, got {type(mesh).__name__}", "mesh")
    with atomic_file(target) as temporary:
        mesh.export(str(temporary), file_type="stl")  # trimesh's "stl" is binary ("stl_ascii" is text)
    return target


def _affine(affine) -> np.ndarray:
    matrix = numpy_array(affine, "affine").astype(np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"expected a 4x4 matrix, got shape {matrix.shape}", "affine")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError(f"expected a last row of 0 0 0 1, got {matrix[3].tolist()}", "affine")
    scale = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(scale == 0) or abs(np.linalg.det(matrix[:3, :3])) < 1e-9 * np.prod(scale):
        raise InputError("expected an invertible matrix, got a singular one", "affine")
    return matrix


def _largest_components(mesh: trimesh.Trimesh, min_fraction: float, max_components: int | None) -> trimesh.Trimesh:
    """The outer surfaces (positive enclosed volume) of ``mesh``'s largest pieces, concatenated.

    Pieces are the face-connected components, as ``mesh.split(only_watertight=False)`` finds them
    (scipy's csgraph, no networkx), but their volumes are summed per face in one pass and only the kept
    pieces are built: a clinical CT has thousands of specks and cavities, and building each one as a
    mesh takes most of a second per thousand. A cavity's surface encloses a negative volume (its normals
    point into the cavity, out of the bone around it); it is dropped, which fills the cavity.
    """
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    corners = mesh.triangles - mesh.vertices.mean(axis=0)  # (F, 3, 3); centred for precision
    face_volumes = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])) / 6.0
    volumes = np.bincount(labels, weights=face_volumes)
    faces = np.bincount(labels)
    # A closed surface has at least 4 faces; fewer is a zero-area face left by merged vertices.
    outer = [int(piece) for piece in np.lexsort((-faces, -volumes)) if volumes[piece] > 0 and faces[piece] >= 4]
    if not outer:  # cannot happen for a padded volume with a voxel above the threshold
        raise InputError("no closed bone surface found", "volume_hu")
    kept = [piece for piece in outer if volumes[piece] >= min_fraction * volumes[outer[0]]][:max_components]
    by_piece = np.split(np.argsort(labels, kind="stable"), np.cumsum(faces)[:-1])  # face indices of each piece
    return mesh.submesh([by_piece[piece] for piece in kept], append=True, only_watertight=False)
