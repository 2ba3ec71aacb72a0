"""DRR line integrals against closed-form chord lengths through analytic ellipsoids and cylinders.

The rays are built from the README's geometry (``documented_geometry``: RAS mm; gantry 0 = AP, source
anterior; 90 = lateral, source at the patient's right; rows superior -> inferior, AP columns patient
right -> left), not taken from the projector's ``ray_endpoints``, so a geometry error cannot cancel.
"""
import numpy as np
import pytest
import torch

from orthogen.drr import ProjectionGeometry, line_integrals

from documented_geometry import rays

SHAPE = (96, 100, 88)
SPACING = (1.0, 1.2, 1.1)  # anisotropic on purpose: the affine must be honoured
ORIGIN = (-40.0, 17.0, 250.0)  # world position of voxel (0, 0, 0), mm
MU = 0.02  # 1/mm, about water
#: RAS mm from the volume's centre (the isocenter) to the object's centre: off every axis, so that a
#: mirrored or rotated view moves the object's shadow off the closed-form one
OBJECT_OFFSET = np.array([8.0, -6.0, 5.0])


def _affine() -> np.ndarray:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    return affine


def _world_grid(affine):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1).astype(np.float64)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _centre(affine):
    return affine[:3, :3] @ ((np.array(SHAPE) - 1) / 2) + affine[:3, 3]


def _object_centre(affine):
    return _centre(affine) + OBJECT_OFFSET


def _ramp(signed_distance_mm, voxel_mm):
    """Partial-volume fraction from a signed distance (positive inside)."""
    return np.clip(0.5 + signed_distance_mm / voxel_mm, 0.0, 1.0)


def _ellipsoid(affine, radii):
    p = _world_grid(affine) - _object_centre(affine)
    q = np.sqrt(((p / radii) ** 2).sum(-1))
    grad = np.linalg.norm(p / np.asarray(radii) ** 2, axis=-1) / np.maximum(q, 1e-9)
    sd = (1.0 - q) / np.maximum(grad, 1e-9)  # first-order signed distance, mm
    return MU * _ramp(sd, min(SPACING))


def _cylinder(affine, radius, height):
    p = _world_grid(affine) - _object_centre(affine)
    radial = radius - np.hypot(p[..., 0], p[..., 1])
    axial = height / 2 - np.abs(p[..., 2])
    return MU * _ramp(radial, min(SPACING)) * _ramp(axial, min(SPACING))


def _chord_ellipsoid(start, end, centre, radii):
    d = end - start
    s = start - centre
    r2 = np.asarray(radii, dtype=np.float64) ** 2
    a = (d * d / r2).sum(-1)
    b = 2 * (s * d / r2).sum(-1)
    c = (s * s / r2).sum(-1) - 1
    disc = np.clip(b * b - 4 * a * c, 0, None)
    return np.sqrt(disc) / a * np.linalg.norm(d, axis=-1)


def _chord_cylinder(start, end, centre, radius, height):
    d = end - start
    d[..., 2] = np.where(d[..., 2] == 0, 1e-12, d[..., 2])  # rays parallel to the end faces
    s = start - centre
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = 2 * (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1])
    c = s[..., 0] ** 2 + s[..., 1] ** 2 - radius**2
    disc = np.clip(b * b - 4 * a * c, 0, None)
    t0, t1 = (-b - np.sqrt(disc)) / (2 * a), (-b + np.sqrt(disc)) / (2 * a)
    z0, z1 = (-height / 2 - s[..., 2]) / d[..., 2], (height / 2 - s[..., 2]) / d[..., 2]
    lo = np.maximum(t0, np.minimum(z0, z1))
    hi = np.minimum(t1, np.maximum(z0, z1))
    return np.clip(hi - lo, 0, None) * np.linalg.norm(d, axis=-1)


GEOMETRIES = {
    "cone": ProjectionGeometry((120, 110), (1.3, 1.3), source_to_isocenter_mm=600.0, source_to_detector_mm=900.0),
    "parallel": ProjectionGeometry((120, 110), (0.9, 0.9), parallel=True),
}
ANGLES = [0.0, 90.0, 33.0]


@pytest.mark.parametrize("kind", ["cone", "parallel"])
@pytest.mark.parametrize("shape", ["ellipsoid", "cylinder"])
def test_line_integrals_match_closed_form(kind, shape):
    affine = _affine()
    geometry = GEOMETRIES[kind]
    centre = _object_centre(affine)
    if shape == "ellipsoid":
        radii = (30.0, 38.0, 34.0)
        volume = _ellipsoid(affine, radii)
    else:
        radius, height = 32.0, 70.0
        volume = _cylinder(affine, radius, height)
    projected = line_integrals(torch.from_numpy(volume).float(), affine, geometry, ANGLES).double().numpy()
    for v, angle in enumerate(ANGLES):
        start, end = rays(geometry, angle, _centre(affine))  # the isocenter is the volume's centre
        margin = 2 * max(SPACING)  # beyond the partial-volume edge
        if shape == "ellipsoid":
            chord = _chord_ellipsoid(start, end, centre, radii)
            outside = _chord_ellipsoid(start, end, centre, np.add(radii, margin)) == 0
            inner = _chord_ellipsoid(start, end, centre, np.subtract(radii, margin)) > 0
        else:
            chord = _chord_cylinder(start, end, centre, radius, height)
            outside = _chord_cylinder(start, end, centre, radius + margin, height + 2 * margin) == 0
            # side-on through the curved wall only: rays that leave through an end face cross it at the
            # cone angle (a few degrees), i.e. along many mm of partial-volume voxels
            away_from_faces = _chord_cylinder(start, end, centre, radius, height - 2 * margin)
            inner = np.isclose(away_from_faces, _chord_cylinder(start, end, centre, radius, 1e9)) & (
                _chord_cylinder(start, end, centre, radius - margin, height) > 0
            )
        expected = MU * chord
        # the object's central region: long chords, away from the silhouette edge, where a ray grazing a
        # face runs inside the one-voxel partial-volume layer and no voxel model can match the closed form
        central = (chord >= 0.5 * chord.max()) & inner
        assert central.sum() > 500
        relative = np.abs(projected[v] - expected)[central] / expected[central]
        assert relative.max() < 0.01, f"{kind} {shape} {angle} deg: max relative error {relative.max():.4f}"
        # rays that miss the object integrate nothing
        assert outside.sum() > 500
        assert np.abs(projected[v][outside]).max() < 1e-6


@pytest.mark.parametrize("kind", ["cone", "parallel"])
def test_ray_endpoints_are_the_documented_rays(kind):
    """ProjectionGeometry.ray_endpoints against the rays built from the documented geometry (RAS mm), at
    AP, lateral, an oblique and an opposite angle: the same source (cone) and pixel centres, pixel by pixel."""
    geometry = GEOMETRIES[kind]
    isocenter = np.array(ORIGIN)
    for angle in (0.0, 90.0, 33.0, 200.0):
        start, end = geometry.ray_endpoints(angle, torch.from_numpy(isocenter), depth_mm=1000.0)
        expected_start, expected_end = rays(geometry, angle, isocenter)
        np.testing.assert_allclose(np.broadcast_to(start.numpy(), end.shape), expected_start, atol=1e-9)
        np.testing.assert_allclose(end.numpy(), expected_end, atol=1e-9)


def test_projection_is_differentiable():
    volume = torch.rand(16, 16, 16, requires_grad=True)
    geometry = ProjectionGeometry((12, 12), (2.0, 2.0), 200.0, 300.0)
    line_integrals(volume, torch.eye(4, dtype=torch.float64), geometry, [0.0, 90.0]).sum().backward()
    assert volume.grad is not None and volume.grad.abs().sum() > 0
