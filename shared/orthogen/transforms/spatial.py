"""Spatial transforms for CT volumes and label maps: crop to a mask, resample to a spacing or a shape.

Every transform takes channel-first input (C, X, Y, Z) (or (C, H, W)) as a numpy array, torch tensor
or MONAI MetaTensor and returns a tensor (a MetaTensor while MONAI tracks meta): cropping keeps the
dtype, resampling gives float32. A MetaTensor keeps its metadata with the voxel-to-world affine
(mm, RAS) updated, so the output still sits where the input sat in the patient. Plain arrays
and tensors are taken to have an identity affine (1 mm voxels at the origin), as MONAI assumes.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import partial

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing, to_affine_nd
from monai.transforms import CropForeground, MapTransform, SpatialCrop, SpatialResample, Transform
from monai.transforms.utils import is_positive
from monai.utils import convert_data_type, convert_to_dst_type, ensure_tuple_rep
from scipy.ndimage import gaussian_filter

from orthogen.errors import InputError
from orthogen.transforms.input_checks import require_channel_first, require_same_spatial_shape

_RESAMPLE_MODES = ("bilinear", "nearest")
_PADDING_MODES = ("border", "zeros", "reflection")


def _affine_of(img: NdarrayOrTensor, spatial_dims: int) -> np.ndarray:
    """The (r+1, r+1) voxel-index-to-world (mm) affine of ``img``; identity for plain arrays."""
    if isinstance(img, MetaTensor):
        affine = convert_data_type(img.affine, np.ndarray, dtype=np.float64)[0]
        return to_affine_nd(spatial_dims, affine)
    return np.eye(spatial_dims + 1)


def _select_labels(mask: NdarrayOrTensor, labels: tuple[float, ...]) -> NdarrayOrTensor:
    """True where ``mask`` holds one of ``labels`` (a picklable ``select_fn`` for CropForeground)."""
    if isinstance(mask, torch.Tensor):
        values = mask.as_tensor() if isinstance(mask, MetaTensor) else mask
        return torch.isin(values, torch.as_tensor(labels, dtype=values.dtype, device=values.device))
    return np.isin(mask, labels)


def _positive_values(values: float | Sequence[float], count: int, name: str, allow_zero: bool) -> np.ndarray:
    """``values`` repeated to ``count`` floats, checked finite and positive (or >= 0 with allow_zero)."""
    try:
        out = np.asarray(ensure_tuple_rep(values, count), dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise InputError(f"expected one number or {count} numbers, got {values}", name) from exc
    low_ok = out >= 0 if allow_zero else out > 0
    if not np.all(np.isfinite(out) & low_ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"expected finite values {bound} (one, or one per spatial axis), got {values}", name)
    return out


class CropToMask(Transform):
    """Crop a volume to the bounding box of a mask, grown by a margin in mm.

    MONAI's :class:`~monai.transforms.CropForeground` finds the box; this adds the margin in mm
    (converted to whole voxels per axis with the mask's spacing and rounded up), the choice of label
    values, and an error for an empty mask. The box is clipped to the volume, never padded. MONAI's
    crop moves the MetaTensor affine's origin to the box's first voxel.

    Args:
        margin_mm: margin added on every side of the box, in mm; one value or one per spatial axis.
        labels: mask values that count as foreground; ``None`` counts every value > 0.

    Call with ``img`` of shape (C, X, Y, Z) (or (C, H, W)) and ``mask`` of shape (1 or C, same spatial
    shape); the spacing comes from the mask's affine, or from the image's if the mask is a plain array.
    Returns the cropped ``img``, shape (C, box size...).
    """

    backend = CropForeground.backend

    def __init__(self, margin_mm: float | Sequence[float] = 0.0, labels: Sequence[float] | None = None):
        _positive_values(margin_mm, 1 if np.ndim(margin_mm) == 0 else len(margin_mm), "margin_mm", allow_zero=True)
        if labels is not None and len(labels) == 0:
            raise InputError("expected at least one label value, or None for every value > 0", "labels")
        self.margin_mm = margin_mm
        self.labels = None if labels is None else tuple(float(v) for v in labels)
        self.select_fn = is_positive if self.labels is None else partial(_select_labels, labels=self.labels)

    def compute_box(
        self, mask: NdarrayOrTensor, source: str = "mask", reference: NdarrayOrTensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voxel box ``[start, end)`` per spatial axis of the selected mask voxels plus the margin.

        Args:
            mask: (C, spatial...) mask; ``source`` names it in errors.
            reference: array whose affine gives the spacing when ``mask`` is not a MetaTensor.
        """
        require_channel_first(mask, (1, 2, 3), source)
        spatial_dims = mask.ndim - 1
        if not bool(self.select_fn(mask).any()):
            wanted = "any value > 0" if self.labels is None else f"the labels {list(self.labels)}"
            raise InputError(f"the mask is empty: no voxel holds {wanted}, so there is nothing to crop to", source)
        spacing_source = mask if isinstance(mask, MetaTensor) or reference is None else reference
        spacing = affine_to_spacing(_affine_of(spacing_source, spatial_dims), spatial_dims)
        margin_mm = _positive_values(self.margin_mm, spatial_dims, "margin_mm", allow_zero=True)
        margin_vox = [int(np.ceil(m / s - 1e-6)) for m, s in zip(margin_mm, spacing)]
        cropper = CropForeground(select_fn=self.select_fn, margin=margin_vox, allow_smaller=True)
        start, end = cropper.compute_bounding_box(mask)
        return start.astype(np.int64), end.astype(np.int64)

    def __call__(self, img: NdarrayOrTensor, mask: NdarrayOrTensor) -> torch.Tensor:
        require_channel_first(img, (1, 2, 3), "img")
        require_channel_first(mask, (1, 2, 3), "mask")
        require_same_spatial_shape(img, mask, "mask")
        start, end = self.compute_box(mask, "mask", reference=img)
        return SpatialCrop(roi_start=start, roi_end=end)(img)


class CropToMaskd(MapTransform):
    """Dictionary form of :class:`CropToMask`: crop every key in ``keys`` to the box of ``d[mask_key]``.

    The box is computed once, before any key is cropped, so ``mask_key`` may itself be in ``keys``.
    It is written to ``d[f"{mask_key}_crop_box"]`` as an int64 array of shape (2, r): start and end
    (exclusive) voxel index per spatial axis of the input grid.
    """

    backend = CropToMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str,
        margin_mm: float | Sequence[float] = 0.0,
        labels: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.cropper = CropToMask(margin_mm=margin_mm, labels=labels)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.mask_key not in d:
            raise InputError(f"expected the mask under this key, got keys {sorted(map(str, d))}", self.mask_key)
        mask = d[self.mask_key]
        start, end = self.cropper.compute_box(mask, self.mask_key)
        for key in self.key_iterator(d):
            require_channel_first(d[key], (1, 2, 3), str(key))
            require_same_spatial_shape(mask, d[key], str(key))
            d[key] = SpatialCrop(roi_start=start, roi_end=end)(d[key])
        d[f"{self.mask_key}_crop_box"] = np.stack([start, end])
        return d


def _smooth_before_downsampling(img: NdarrayOrTensor, shrink: np.ndarray) -> NdarrayOrTensor:
    """Gaussian anti-aliasing, sigma (shrink - 1) / 2 voxels on shrinking axes (skimage.transform.resize's rule).

    Hand-written on scipy's filter with edge replication because MONAI's GaussianSmooth pads with
    zeros, which would pull the HU of border voxels towards 0 HU.
    """
    sigma = np.maximum(0.0, (shrink - 1.0) / 2.0)
    if not np.any(sigma > 0):
        return img
    values = convert_data_type(img, np.ndarray, dtype=np.float64)[0]
    smoothed = np.stack([gaussian_filter(channel, sigma, mode="nearest") for channel in values])
    return convert_to_dst_type(smoothed, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)[0]


def resample_to_grid(
    img: NdarrayOrTensor,
    shape_out: Sequence[int],
    spacing_out: np.ndarray,
    mode: str,
    padding_mode: str,
    anti_aliasing: bool,
) -> torch.Tensor:
    """Resample ``img`` onto a grid of ``shape_out`` voxels of ``spacing_out`` mm with the same centre and axes.

    The output grid keeps the input's axis directions and the world position of the volume's centre,
    so its corners lie within half an output voxel of the input's (exactly on them when the extent
    divides evenly). Interpolation is MONAI's SpatialResample.
    """
    spatial_dims = img.ndim - 1
    src_affine = _affine_of(img, spatial_dims)
    spacing_in = affine_to_spacing(src_affine, spatial_dims)
    dst_affine = np.eye(spatial_dims + 1)
    dst_affine[:spatial_dims, :spatial_dims] = src_affine[:spatial_dims, :spatial_dims] / spacing_in * spacing_out
    centre_in = (np.asarray(img.shape[1:], dtype=np.float64) - 1.0) / 2.0
    centre_out = (np.asarray(shape_out, dtype=np.float64) - 1.0) / 2.0
    centre_world = src_affine[:spatial_dims, :spatial_dims] @ centre_in + src_affine[:spatial_dims, -1]
    dst_affine[:spatial_dims, -1] = centre_world - dst_affine[:spatial_dims, :spatial_dims] @ centre_out
    if anti_aliasing and mode != "nearest":
        img = _smooth_before_downsampling(img, spacing_out / spacing_in)
    resampler = SpatialResample(mode=mode, padding_mode=padding_mode, align_corners=False, dtype=torch.float64)
    return resampler(img, dst_affine=torch.as_tensor(dst_affine), spatial_size=[int(n) for n in shape_out])


def _check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of the supported interpolation modes, else raise InputError."""
    if mode not in _RESAMPLE_MODES:
        raise InputError(f"expected one of {list(_RESAMPLE_MODES)}, got {mode!r}", "mode")
    return mode


def _check_padding_mode(padding_mode: str) -> str:
    """Return ``padding_mode`` if grid_sample supports it, else raise InputError."""
    if padding_mode not in _PADDING_MODES:
        raise InputError(f"expected one of {list(_PADDING_MODES)}, got {padding_mode!r}", "padding_mode")
    return padding_mode


class ResampleToSpacing(Transform):
    """Resample a volume to a voxel spacing in mm, keeping its physical extent and position.

    The output has ``round(n * spacing_in / spacing_mm)`` voxels per axis, centred on the input's
    centre with the input's axis directions, so each face moves by at most a quarter of an output
    voxel. Unlike MONAI's :class:`~monai.transforms.Spacing`, which pins the first voxel centre and
    can grow the extent by a voxel, this keeps the extent; the interpolation is MONAI's SpatialResample.

    Args:
        spacing_mm: output voxel spacing in mm; one value or one per spatial axis.
        mode: ``"bilinear"`` (trilinear in 3D; for CT in HU) or ``"nearest"`` (for label maps).
        padding_mode: value outside the input: ``"border"`` (default, repeats the edge), ``"zeros"``
            or ``"reflection"``.
        anti_aliasing: Gaussian smoothing before downsampling (ignored for ``"nearest"``).

    Input (C, X, Y, Z) or (C, H, W); returns float32, shape (C, new size...), affine with the new spacing.
    """

    backend = SpatialResample.backend

    def __init__(
        self,
        spacing_mm: float | Sequence[float],
        mode: str = "bilinear",
        padding_mode: str = "border",
        anti_aliasing: bool = True,
    ):
        count = 1 if np.ndim(spacing_mm) == 0 else len(spacing_mm)
        _positive_values(spacing_mm, count, "spacing_mm", allow_zero=False)
        self.spacing_mm = spacing_mm
        self.mode = _check_mode(mode)
        self.padding_mode = _check_padding_mode(padding_mode)
        self.anti_aliasing = anti_aliasing

    def __call__(self, img: NdarrayOrTensor, mode: str | None = None) -> torch.Tensor:
        require_channel_first(img, (2, 3), "img")
        spatial_dims = img.ndim - 1
        spacing_out = _positive_values(self.spacing_mm, spatial_dims, "spacing_mm", allow_zero=False)
        spacing_in = affine_to_spacing(_affine_of(img, spatial_dims), spatial_dims)
        extent_mm = np.asarray(img.shape[1:], dtype=np.float64) * spacing_in
        shape_out = [max(1, int(np.floor(e / s + 0.5))) for e, s in zip(extent_mm, spacing_out)]
        mode_ = self.mode if mode is None else _check_mode(mode)
        return resample_to_grid(img, shape_out, spacing_out, mode_, self.padding_mode, self.anti_aliasing)


class ResampleToShape(Transform):
    """Resample a volume to an exact grid shape (e.g. a 128^3 cube), keeping its physical extent.

    The new spacing per axis is ``n * spacing_in / shape``, so the output's corners are exactly the
    input's corners in world mm (the X2CT data preparation resamples each cropped vertebra this way).
    Built on the same centred-grid SpatialResample as :class:`ResampleToSpacing`.

    Args:
        shape: output spatial shape; one int for a cube or one per spatial axis.
        mode: ``"bilinear"`` (CT) or ``"nearest"`` (label maps).
        padding_mode: ``"border"`` (default), ``"zeros"`` or ``"reflection"``.
        anti_aliasing: Gaussian smoothing before downsampling (ignored for ``"nearest"``).

    Input (C, X, Y, Z) or (C, H, W); returns float32 of shape (C, *shape) with the affine updated.
    """

    backend = SpatialResample.backend

    def __init__(
        self,
        shape: int | Sequence[int],
        mode: str = "bilinear",
        padding_mode: str = "border",
        anti_aliasing: bool = True,
    ):
        sizes = ensure_tuple_rep(shape, 1) if np.ndim(shape) == 0 else tuple(shape)
        if not all(isinstance(n, (int, np.integer)) and n >= 1 for n in sizes):
            raise InputError(f"expected positive integers (one, or one per spatial axis), got {shape}", "shape")
        self.shape = shape
        self.mode = _check_mode(mode)
        self.padding_mode = _check_padding_mode(padding_mode)
        self.anti_aliasing = anti_aliasing

    def __call__(self, img: NdarrayOrTensor, mode: str | None = None) -> torch.Tensor:
        require_channel_first(img, (2, 3), "img")
        spatial_dims = img.ndim - 1
        if np.ndim(self.shape) != 0 and len(self.shape) != spatial_dims:
            raise InputError(f"expected {spatial_dims} sizes for a {spatial_dims}D image, got {self.shape}", "shape")
        shape_out = [int(n) for n in ensure_tuple_rep(self.shape, spatial_dims)]
        spacing_in = affine_to_spacing(_affine_of(img, spatial_dims), spatial_dims)
        spacing_out = np.asarray(img.shape[1:], dtype=np.float64) * spacing_in / np.asarray(shape_out)
        mode_ = self.mode if mode is None else _check_mode(mode)
        return resample_to_grid(img, shape_out, spacing_out, mode_, self.padding_mode, self.anti_aliasing)


class _PerKeyModeResampled(MapTransform):
    """A dictionary form that runs one resampler with a mode per key (shared by the two below)."""

    def __init__(self, keys: KeysCollection, resampler: Transform, mode: str | Sequence[str], allow_missing_keys: bool):
        super().__init__(keys, allow_missing_keys)
        self.mode = tuple(_check_mode(m) for m in ensure_tuple_rep(mode, len(self.keys)))
        self.resampler = resampler

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.resampler(d[key], mode=mode)
        return d


class ResampleToSpacingd(_PerKeyModeResampled):
    """Dictionary form of :class:`ResampleToSpacing`; ``mode`` may give one mode per key
    (e.g. ``("bilinear", "nearest")`` for a CT and its label map)."""

    backend = ResampleToSpacing.backend

    def __init__(
        self,
        keys: KeysCollection,
        spacing_mm: float | Sequence[float],
        mode: str | Sequence[str] = "bilinear",
        padding_mode: str = "border",
        anti_aliasing: bool = True,
        allow_missing_keys: bool = False,
    ):
        resampler = ResampleToSpacing(spacing_mm, padding_mode=padding_mode, anti_aliasing=anti_aliasing)
        super().__init__(keys, resampler, mode, allow_missing_keys)


class ResampleToShaped(_PerKeyModeResampled):
    """Dictionary form of :class:`ResampleToShape`; ``mode`` may give one mode per key."""

    backend = ResampleToShape.backend

    def __init__(
        self,
        keys: KeysCollection,
        shape: int | Sequence[int],
        mode: str | Sequence[str] = "bilinear",
        padding_mode: str = "border",
        anti_aliasing: bool = True,
        allow_missing_keys: bool = False,
    ):
        resampler = ResampleToShape(shape, padding_mode=padding_mode, anti_aliasing=anti_aliasing)
        super().__init__(keys, resampler, mode, allow_missing_keys)
