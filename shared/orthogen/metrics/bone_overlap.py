"""Bone overlap of a generated CT with the real one: Dice and ASSD of thresholded bone, after rigid registration.

A CT generated from two radiographs may be well shaped but slightly turned or shifted, so the bone masks
are compared twice: as given (world coordinates, identity transform) and after a rigid registration of the
generated CT to the real one. Steps:

1. Both volumes (X, Y, Z) in HU with NIfTI-style voxel -> RAS mm affines become SimpleITK images (ITK's
   physical frame is LPS: x and y flip; spacing, direction and origin come from the affine, which must
   have orthogonal columns, i.e. no shear).
2. Registration (SimpleITK's ``ImageRegistrationMethod``, nothing hand-written): ``Euler3DTransform``
   initialised by ``CenteredTransformInitializer`` (geometric centres), Mattes mutual information (or
   mean squares) on the HU images, regular-step gradient descent with scales from physical shift, a
   multi-resolution pyramid (shrink 4, 2, 1; smoothing 2, 1, 0 voxels), linear interpolation. The
   metric samples every voxel, so the result is deterministic.
3. The generated CT is resampled (linear, air outside) into the real CT's grid, with the found
   transform and with the identity; bone is ``HU > bone_threshold_hu`` in each.
   Only the real voxels that the moved generated grid covers are compared (both masks are cut to that
   field of view), so bone beyond the generated CT's edge is not counted as missed.
   A registration that moves no corner of the real grid by ``MIN_MOTION_VOXELS`` (0.1) of a voxel or more
   is replaced by the identity: such a shift only re-interpolates the noise (the optimiser drifts by
   ~0.01 voxel on identical CTs), so identical CTs stay exactly aligned (Dice 1, ASSD 0).
4. Dice (MONAI ``compute_dice``) and the average symmetric surface distance in mm (MONAI
   ``compute_average_surface_distance(symmetric=True)``, with the real grid's voxel spacing).

Empty masks: an empty bone mask of the *real* CT is a bad input (wrong threshold or not a CT) and raises
InputError. An empty mask of the *generated* CT (after resampling) is a result, a total failure: Dice 0
and ASSD ``inf`` (there is no surface to measure from), logged as a warning.

The transform is reported in RAS mm: it maps a point of the real CT to the matching point of the
generated CT; ``rotation_deg`` is its rotation angle (axis-angle) and ``translation_mm`` the displacement of
the real CT's centre.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from orthogen.errors import InputError

logger = logging.getLogger(__name__)

#: Bone is HU above this by default (cancellous bone ~ 200-400 HU, cortical > 1000 HU).
BONE_THRESHOLD_HU = 200.0
#: Value of the generated CT outside its own grid when resampled (air).
AIR_HU = -1000.0
REGISTRATION_METRICS = ("mattes", "mean_squares")
#: A registration moving no grid corner by this share of the smallest voxel size is taken as the identity.
MIN_MOTION_VOXELS = 0.1
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class BoneOverlap:
    """Bone overlap of one generated CT with the real one.

    Attributes:
        dice, assd_mm: after rigid registration; Dice in [0, 1], ASSD in mm (``inf``: generated mask empty).
        dice_unregistered, assd_unregistered_mm: the same with the identity transform (world coordinates).
        rotation_deg: rotation angle of the registration, degrees.
        translation_mm: (x, y, z) RAS displacement of the real CT's centre, mm.
        bone_threshold_hu: bone is HU above this.
        registration_metric, registration_metric_value: the metric the registration optimised and the
            optimiser's final value (lower is better; kept even when a sub-voxel result is replaced by
            the identity).
    """

    dice: float
    assd_mm: float
    dice_unregistered: float
    assd_unregistered_mm: float
    rotation_deg: float
    translation_mm: tuple[float, float, float]
    bone_threshold_hu: float
    registration_metric: str
    registration_metric_value: float

    @property
    def translation_norm_mm(self) -> float:
        return float(np.linalg.norm(self.translation_mm))

    def as_dict(self) -> dict[str, float]:
        """Flat table row: the fields, ``translation_mm`` split into x/y/z, and its norm."""
        row = asdict(self)
        tx, ty, tz = row.pop("translation_mm")
        row.update(translation_x_mm=tx, translation_y_mm=ty, translation_z_mm=tz,
                   translation_norm_mm=self.translation_norm_mm)
        return row


def _volume(value, name: str) -> np.ndarray:
    array = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)
    if array.dtype.kind not in "fiu" or array.ndim != 3 or min(array.shape) < 2:
        raise InputError(f"expected a real (X, Y, Z) CT in HU, at least 2 voxels per axis, got {array.dtype} "
                         f"{array.shape}", name)
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise InputError("expected finite HU values, got NaN or inf", name)
    return array


def _affine(value, name: str) -> np.ndarray:
    matrix = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InputError(f"expected a finite (4, 4) voxel -> RAS mm matrix, got shape {matrix.shape}", name)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"expected non-zero voxel sizes, got {spacing.tolist()}", name)
    direction = matrix[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError("expected orthogonal affine columns (no shear), got a sheared matrix", name)
    return matrix


def sitk_image(volume_hu: np.ndarray, affine: np.ndarray):
    """An (X, Y, Z) HU volume with its voxel -> RAS mm affine as a SimpleITK image (LPS physical frame)."""
    import SimpleITK as sitk

    volume_hu, affine = _volume(volume_hu, "volume_hu"), _affine(affine, "affine")
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume_hu.transpose(2, 1, 0)))  # ITK index order x, y, z
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((_RAS_TO_LPS @ (affine[:3, :3] / spacing)).ravel().tolist())
    image.SetOrigin((_RAS_TO_LPS @ affine[:3, 3]).tolist())
    return image


def _array(image) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def rigid_registration(moving, fixed, *, metric: str = "mattes", shrink_factors: Sequence[int] = (4, 2, 1),
                       smoothing_sigmas: Sequence[float] = (2.0, 1.0, 0.0), iterations: int = 200,
                       histogram_bins: int = 32):
    """Rigid (Euler 3D) registration of SimpleITK image ``moving`` to ``fixed`` (see the module docstring).

    Returns:
        ``(transform, metric_value)``: the ``sitk.Euler3DTransform`` mapping fixed physical points (LPS mm)
        to moving ones, and the final metric value.
    """
    import SimpleITK as sitk

    if len(shrink_factors) != len(smoothing_sigmas) or len(shrink_factors) == 0:
        raise InputError(f"expected one smoothing sigma per shrink factor, got {list(shrink_factors)} and "
                         f"{list(smoothing_sigmas)}", "shrink_factors, smoothing_sigmas")
    method = _metric_method(metric, histogram_bins)  # checks ``metric`` first
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.GEOMETRY)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=iterations,
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([int(s) for s in shrink_factors])
    method.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    result = method.Execute(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    return sitk.Euler3DTransform(result.GetNthTransform(0) if result.GetName() == "CompositeTransform" else result), \
        float(method.GetMetricValue())


def _metric_method(metric: str, histogram_bins: int):
    import SimpleITK as sitk

    if metric not in REGISTRATION_METRICS:
        raise InputError(f"expected one of {REGISTRATION_METRICS}, got {metric!r}", "metric")
    method = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=histogram_bins)
    else:
        method.SetMetricAsMeanSquares()
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _largest_motion_mm(transform, image) -> float:
    """Largest displacement (mm) by ``transform`` of the corners of ``image``'s grid."""
    size = image.GetSize()
    corners = [image.TransformContinuousIndexToPhysicalPoint([(n - 1) * c for n, c in zip(size, corner)])
               for corner in np.ndindex(2, 2, 2)]
    return max(float(np.linalg.norm(np.subtract(transform.TransformPoint(p), p))) for p in corners)


def bone_dice_assd(generated_mask: np.ndarray, real_mask: np.ndarray,
                   spacing_mm: Sequence[float]) -> tuple[float, float]:
    """Dice and average symmetric surface distance (mm) of two (X, Y, Z) boolean masks on one grid.

    MONAI's ``compute_dice`` and ``compute_average_surface_distance(symmetric=True, spacing=...)``.
    An empty ``real_mask`` raises InputError; an empty ``generated_mask`` gives (0.0, inf).
    """
    from monai.metrics import compute_average_surface_distance, compute_dice

    generated_mask, real_mask = np.asarray(generated_mask, dtype=bool), np.asarray(real_mask, dtype=bool)
    if generated_mask.shape != real_mask.shape or generated_mask.ndim != 3:
        raise InputError(f"expected two (X, Y, Z) masks of one shape, got {generated_mask.shape} and "
                         f"{real_mask.shape}", "generated_mask, real_mask")
    if not real_mask.any():
        raise InputError("the real CT's bone mask is empty; expected bone above the threshold", "real_mask")
    if not generated_mask.any():
        logger.warning("the generated CT has no bone above the threshold: Dice 0, ASSD inf")
        return 0.0, math.inf
    p = torch.from_numpy(generated_mask)[None, None].float()
    t = torch.from_numpy(real_mask)[None, None].float()
    dice = float(compute_dice(p, t, include_background=True).item())
    assd = float(compute_average_surface_distance(p, t, include_background=True, symmetric=True,
                                                  spacing=[float(s) for s in spacing_mm]).item())
    return dice, assd


def _rotation_angle_deg(matrix: np.ndarray) -> float:
    cosine = (np.trace(matrix) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def bone_overlap(generated_hu, generated_affine, real_hu, real_affine, *,
                 bone_threshold_hu: float = BONE_THRESHOLD_HU, metric: str = "mattes",
                 shrink_factors: Sequence[int] = (4, 2, 1), smoothing_sigmas: Sequence[float] = (2.0, 1.0, 0.0),
                 iterations: int = 200) -> BoneOverlap:
    """Dice and ASSD of the bone masks of a generated and a real CT, before and after rigid registration.

    Args:
        generated_hu, real_hu: (X, Y, Z) CTs in HU (numpy or torch); the grids may differ.
        generated_affine, real_affine: (4, 4) voxel -> RAS mm.
        bone_threshold_hu: bone is HU strictly above this (default 200 HU).
        metric: ``"mattes"`` (Mattes mutual information) or ``"mean_squares"``, on the HU images.
        shrink_factors, smoothing_sigmas (voxels), iterations: the registration pyramid and its budget.

    Returns:
        :class:`BoneOverlap`, compared on the real CT's grid and spacing.

    Raises:
        InputError: naming the argument: not a finite (X, Y, Z) volume, an affine not (4, 4) / sheared,
            a non-finite threshold, or no bone above the threshold in the real CT.
    """
    import SimpleITK as sitk

    generated = sitk_image(_volume(generated_hu, "generated_hu"), _affine(generated_affine, "generated_affine"))
    real_array = _volume(real_hu, "real_hu")
    real_affine = _affine(real_affine, "real_affine")
    real = sitk_image(real_array, real_affine)
    try:
        threshold = float(bone_threshold_hu)
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold):
        raise InputError(f"expected a finite HU value, got {bone_threshold_hu!r}", "bone_threshold_hu")
    real_mask = real_array > threshold
    if not real_mask.any():
        raise InputError(f"the real CT has no voxel above {threshold:g} HU (max {real_array.max():.0f} HU); expected "
                         "bone above the threshold", "real_hu")
    spacing = np.linalg.norm(real_affine[:3, :3], axis=0)

    inside = sitk.Image(generated.GetSize(), sitk.sitkUInt8) + 1
    inside.CopyInformation(generated)

    def overlap(transform) -> tuple[float, float]:
        """Dice and ASSD within the real voxels that the moved generated grid covers."""
        moved = _array(sitk.Resample(generated, real, transform, sitk.sitkLinear, AIR_HU, sitk.sitkFloat32))
        covered = _array(sitk.Resample(inside, real, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)) > 0
        if not (real_mask & covered).any():
            raise InputError("the generated CT's grid covers none of the real CT's bone; expected overlapping "
                             "fields of view", "generated_affine")
        return bone_dice_assd((moved > threshold) & covered, real_mask & covered, spacing)

    identity = sitk.Euler3DTransform()
    dice0, assd0 = overlap(identity)
    transform, metric_value = rigid_registration(generated, real, metric=metric, shrink_factors=shrink_factors,
                                                 smoothing_sigmas=smoothing_sigmas, iterations=iterations)
    if _largest_motion_mm(transform, real) < MIN_MOTION_VOXELS * float(spacing.min()):
        transform = identity  # a sub-voxel re-interpolation only (e.g. identical CTs): keep them aligned
    dice, assd = overlap(transform)
    rotation = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre_lps = np.asarray(real.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in real.GetSize()]))
    shift_lps = np.asarray(transform.TransformPoint(centre_lps.tolist())) - centre_lps
    result = BoneOverlap(dice, assd, dice0, assd0, _rotation_angle_deg(rotation),
                         tuple(float(v) for v in _RAS_TO_LPS @ shift_lps), threshold, metric, metric_value)
    logger.info("bone overlap (> %g HU): Dice %.4f -> %.4f, ASSD %.2f -> %.2f mm after registration "
                "(rotation %.2f deg, translation %.2f mm)", threshold, dice0, dice, assd0, assd,
                result.rotation_deg, result.translation_norm_mm)
    return result
