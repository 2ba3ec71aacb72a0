"""The X2CT-GAN metric table, computed exactly as the reference's ``3DGAN/test.py`` does.

All functions take a prediction and a target of one shape (D, H, W) with values in [0, 1] (the CT
window the network is trained on) and are symmetric in their two arguments. Following the reference:

- MAE0, MSE0, cosine similarity and SSIM are computed on the [0, 1] volumes, in float64.
- MAE, MSE and every PSNR are computed after mapping to the [0, 2500] scale and truncating to
  integers (``(v * 2500).astype(int32)``, as the reference does).
- PSNR uses a peak of 4095 although the values span [0, 2500]. This inflates every PSNR by
  20 * log10(4095 / 2500) = 4.29 dB over the honest value; the table therefore also reports
  ``PSNR_3D_honest`` with the true peak, 2500. A zero MSE gives 100 dB (the reference's cap), per
  volume and, for the slice-wise PSNRs, per slice.
- PSNR_1/2/3 are the mean PSNRs of the slices along axes 0 (D), 1 (H) and 2 (W); PSNR_avg is their mean.
- SSIM is scikit-image's ``structural_similarity`` with its defaults, as the reference's
  ``compare_ssim(..., multichannel=True)`` (uniform 7x7 window, sample covariance, K1 = 0.01,
  K2 = 0.03, data_range 1, the window radius cropped from the borders), computed on every 2D slice
  along each axis; per axis the slices are averaged, and SSIM is the mean of the three axes.
- :func:`x2ct_metric_table` clips the prediction to [0, 1] first, as the reference clips the
  generated CT. The reference drops a case whose cosine similarity is NaN (an all-zero volume);
  here :func:`cosine_similarity` returns NaN for it and :func:`mean_metric_table` keeps it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from skimage.metrics import structural_similarity

from orthogen.errors import InputError

X2CT_SCALE_MAX = 2500
"""Top of the integer scale the [0, 1] CT window is mapped to for MAE, MSE and PSNR."""
X2CT_PSNR_PEAK = 4095.0
"""The peak the reference's PSNR uses (4.29 dB above the honest peak, X2CT_SCALE_MAX)."""
PSNR_CAP_DB = 100.0
"""PSNR reported for a zero mean squared error, as the reference does."""
SSIM_WINDOW = 7

METRIC_KEYS = (
    "MAE0",
    "MSE0",
    "MAE",
    "MSE",
    "PSNR_3D",
    "PSNR_1",
    "PSNR_2",
    "PSNR_3",
    "PSNR_avg",
    "CosineSimilarity",
    "SSIM",
    "PSNR_3D_honest",
)


def _checked_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both volumes as arrays, after checking they are (D, H, W), of one shape and within [0, 1]."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim != 3 or pred.shape != target.shape or pred.size == 0:
        raise InputError(
            f"expected prediction and target volumes of one shape (D, H, W), got {pred.shape} and {target.shape}",
            "pred, target",
        )
    for name, volume in (("pred", pred), ("target", target)):
        if volume.dtype.kind not in "fiu":
            raise InputError(f"expected a real-valued volume, got dtype {volume.dtype}", name)
        if not np.all(np.isfinite(volume)) or volume.min() < 0 or volume.max() > 1:
            raise InputError(
                f"expected finite values in [0, 1], got range [{volume.min()}, {volume.max()}]", name
            )
    return pred, target


def _x2ct_scale(volume: np.ndarray) -> np.ndarray:
    """[0, 1] -> integers in [0, 2500], truncated as the reference does, as float64."""
    return (volume * X2CT_SCALE_MAX).astype(np.int32).astype(np.float64)


def _psnr(mse: np.ndarray, peak: float) -> np.ndarray:
    """PSNR in dB of each mean squared error; 100 dB where it is zero."""
    mse = np.asarray(mse, dtype=np.float64)
    safe = np.where(mse == 0, 1.0, mse)
    return np.where(mse == 0, PSNR_CAP_DB, 20 * np.log10(peak / np.sqrt(safe)))


def mae0(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error on the [0, 1] volumes."""
    pred, target = _checked_pair(pred, target)
    return float(np.abs(pred.astype(np.float64) - target.astype(np.float64)).mean())


def mse0(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error on the [0, 1] volumes."""
    pred, target = _checked_pair(pred, target)
    return float(((pred.astype(np.float64) - target.astype(np.float64)) ** 2).mean())


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error on the integer [0, 2500] scale."""
    pred, target = _checked_pair(pred, target)
    return float(np.abs(_x2ct_scale(pred) - _x2ct_scale(target)).mean())


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error on the integer [0, 2500] scale."""
    pred, target = _checked_pair(pred, target)
    return float(((_x2ct_scale(pred) - _x2ct_scale(target)) ** 2).mean())


def psnr_3d(pred: np.ndarray, target: np.ndarray, peak: float = X2CT_PSNR_PEAK) -> float:
    """PSNR (dB) of the whole volume on the integer [0, 2500] scale; ``peak`` 4095 as the reference."""
    pred, target = _checked_pair(pred, target)
    return float(_psnr(((_x2ct_scale(pred) - _x2ct_scale(target)) ** 2).mean(), peak))


def psnr_2d_per_axis(
    pred: np.ndarray, target: np.ndarray, peak: float = X2CT_PSNR_PEAK
) -> tuple[float, float, float, float]:
    """Slice-wise PSNR (dB) on the integer [0, 2500] scale -> (PSNR_1, PSNR_2, PSNR_3, PSNR_avg).

    PSNR_a is the mean over the slices along axis a-1 of each slice's PSNR; PSNR_avg is their mean.
    """
    pred, target = _checked_pair(pred, target)
    squared_error = (_x2ct_scale(pred) - _x2ct_scale(target)) ** 2
    per_axis = [
        float(_psnr(squared_error.mean(axis=tuple(a for a in range(3) if a != axis)), peak).mean()) for axis in range(3)
    ]
    return per_axis[0], per_axis[1], per_axis[2], sum(per_axis) / 3


def cosine_similarity(pred: np.ndarray, target: np.ndarray) -> float:
    """Cosine of the angle between the two [0, 1] volumes seen as vectors; NaN if either is all zero."""
    pred, target = _checked_pair(pred, target)
    p, t = pred.astype(np.float64).ravel(), target.astype(np.float64).ravel()
    norms = np.linalg.norm(p) * np.linalg.norm(t)
    return float(np.dot(p, t) / norms) if norms > 0 else math.nan


def ssim_3axes(pred: np.ndarray, target: np.ndarray) -> tuple[float, float, float, float]:
    """SSIM of the 2D slices along each axis -> (SSIM_1, SSIM_2, SSIM_3, SSIM_avg).

    SSIM_a is the mean SSIM of the slices along axis a-1 (skimage defaults, data_range 1); every axis
    must be at least 7 voxels long (the SSIM window).
    """
    pred, target = _checked_pair(pred, target)
    if min(pred.shape) < SSIM_WINDOW:
        raise InputError(f"SSIM needs every axis >= {SSIM_WINDOW} voxels, got shape {pred.shape}", "pred, target")
    p, t = pred.astype(np.float64), target.astype(np.float64)
    per_axis = [
        float(
            structural_similarity(np.moveaxis(p, axis, -1), np.moveaxis(t, axis, -1), data_range=1.0, channel_axis=-1)
        )
        for axis in range(3)
    ]
    return per_axis[0], per_axis[1], per_axis[2], sum(per_axis) / 3


def x2ct_metric_table(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Every X2CT metric of one case, keys :data:`METRIC_KEYS`; ``pred`` is clipped to [0, 1] first."""
    pred = np.asarray(pred)
    if pred.dtype.kind not in "fiu":
        raise InputError(f"expected a real-valued volume, got dtype {pred.dtype}", "pred")
    pred = np.clip(pred, 0, 1)
    psnr_1, psnr_2, psnr_3, psnr_avg = psnr_2d_per_axis(pred, target)
    return {
        "MAE0": mae0(pred, target),
        "MSE0": mse0(pred, target),
        "MAE": mae(pred, target),
        "MSE": mse(pred, target),
        "PSNR_3D": psnr_3d(pred, target),
        "PSNR_1": psnr_1,
        "PSNR_2": psnr_2,
        "PSNR_3": psnr_3,
        "PSNR_avg": psnr_avg,
        "CosineSimilarity": cosine_similarity(pred, target),
        "SSIM": ssim_3axes(pred, target)[3],
        "PSNR_3D_honest": psnr_3d(pred, target, peak=X2CT_SCALE_MAX),
    }


def mean_metric_table(tables: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over cases; every table must have the same keys."""
    if len(tables) == 0:
        raise InputError("expected at least one metric table, got none", "tables")
    keys = list(tables[0])
    for index, table in enumerate(tables):
        if set(table) != set(keys):
            raise InputError(f"expected the keys {sorted(keys)}, got {sorted(table)}", f"tables[{index}]")
    return {key: float(np.mean([table[key] for table in tables])) for key in keys}
