"""Per-image MAE and PSNR of a generated radiograph against the real one, as the seed's Table I reports.

Mei et al. (segmentation-guided knee radiograph generation) score each generated radiograph against
the real one by MAE and PSNR and report mean +- std over the test images. Here:

- Both images are (H, W) or (1, H, W), values in [0, 1] (checked, not clipped), compared in float64.
- MAE and PSNR are MONAI's :class:`monai.metrics.MAEMetric` and :class:`monai.metrics.PSNRMetric`
  (per image, ``reduction="none"``); PSNR uses a peak (``max_val``) of 1, the images' data range:
  ``PSNR = 20 log10(1) - 10 log10(MSE) = -10 log10(MSE)`` dB.
- Identical images (MSE 0) give MONAI's +inf; :func:`radiograph_psnr` reports :data:`PSNR_CAP_DB`
  (100 dB, as :mod:`orthogen.metrics.x2ct` does) instead, so means and stds stay finite. 100 dB is an
  MSE of 1e-10, far above any real difference (one 8-bit grey level everywhere is 48.1 dB); an image
  at the cap pulls a mean up, so a CSV row at 100 dB means "identical", not "very good".
- :func:`mean_std` is the mean and the *population* standard deviation (ddof = 0, numpy's default)
  over images; ``ddof=1`` gives the sample std. The seed does not say which it uses.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import MAEMetric, PSNRMetric

from orthogen.errors import InputError

PSNR_PEAK = 1.0
"""The PSNR peak (MONAI's ``max_val``): the data range of radiographs in [0, 1]."""
PSNR_CAP_DB = 100.0
"""PSNR reported for identical images (MSE 0, where the formula gives +inf)."""


def _image(value, name: str) -> np.ndarray:
    """``value`` as a float64 (H, W) array, after checking its shape, type and [0, 1] range."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"expected a radiograph of shape (H, W) or (1, H, W), got {array.shape}", name)
    if array.dtype.kind not in "fiu":
        raise InputError(f"expected a real-valued radiograph, got dtype {array.dtype}", name)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise InputError(f"expected finite values in [0, 1], got range [{array.min()}, {array.max()}]", name)
    return array


def _checked_pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Both radiographs as float64 tensors (1, 1, H, W) (MONAI's batch-first, channel-first layout)."""
    p, t = _image(pred, "pred"), _image(target, "target")
    if p.shape != t.shape:
        raise InputError(f"expected radiographs of one shape, got {p.shape} and {t.shape}", "pred, target")
    return torch.from_numpy(p)[None, None], torch.from_numpy(t)[None, None]


def radiograph_mae(pred, target) -> float:
    """Mean absolute error of two [0, 1] radiographs (MONAI's ``MAEMetric``)."""
    p, t = _checked_pair(pred, target)
    return float(MAEMetric(reduction="none")(p, t).item())


def radiograph_psnr(pred, target) -> float:
    """PSNR in dB with peak 1 (MONAI's ``PSNRMetric(max_val=1)``); :data:`PSNR_CAP_DB` for identical images."""
    p, t = _checked_pair(pred, target)
    value = float(PSNRMetric(max_val=PSNR_PEAK, reduction="none")(p, t).item())
    return PSNR_CAP_DB if math.isinf(value) and value > 0 else value


def radiograph_metrics(pred, target) -> dict[str, float]:
    """``{"MAE": ..., "PSNR": ...}`` of one generated radiograph against the real one."""
    return {"MAE": radiograph_mae(pred, target), "PSNR": radiograph_psnr(pred, target)}


def mean_std(values: Sequence[float], ddof: int = 0) -> tuple[float, float]:
    """(mean, std) over images; std is the population std (ddof = 0) unless ``ddof=1`` (sample std).

    One value gives std 0 with ddof 0; ddof 1 needs at least two values.
    """
    array = np.asarray(list(values), dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"expected a non-empty list of numbers, got shape {array.shape}", "values")
    if ddof not in (0, 1):
        raise InputError(f"expected 0 (population) or 1 (sample), got {ddof!r}", "ddof")
    if array.size <= ddof:
        raise InputError(f"the sample std needs at least 2 values, got {array.size}", "values")
    return float(array.mean()), float(array.std(ddof=ddof))
