"""Whether a volume's values look like a CT in Hounsfield units: the check for files that carry no Modality.

A DICOM series says what it is (Modality CT, checked in :mod:`orthogen.io.ct_series_checks`); a NIfTI or
NRRD file does not, and an MR volume, a CT saved without its rescale intercept (air 0, water 1024) or a
normalised image reads just as well. :func:`check_ct_hounsfield` tells them apart by their values alone.

The rule (every number a module constant), on the finite voxels:

1. **HU scale**: at most 1 % of the voxels above 4071 HU (the 12-bit CT range's top, 3071 HU, plus a
   1000 HU margin for dense metal), and at least half of them within [-1124, 4071] HU (the range's bottom,
   -1024 HU, less a 100 HU margin; padding outside the field of view, -2048 or -3024 HU, may fill the
   rest).
2. **Air, or tissue and bone**: either *air* (at least 0.1 % of the voxels below -200 HU: air, lung or
   padding, which every CT of a whole body part holds and no MR magnitude image does: MR has no negative
   values), or, for a crop without air (a vertebra cut from a CT holds only soft tissue and bone; the
   phantom vertebra crops have no voxel below -10 HU), *soft tissue and bone*: a median of -200 to 300 HU
   (soft tissue around water, fat at -100 HU) and at least 0.01 % of the voxels above 200 HU (bone: one
   voxel in 10 000 is enough; it tells a crop from a normalised or z-scored image, which has none).

What it refuses: an MR volume whose tissue fills most of it (median hundreds to thousands of units, no
negative values), a CT saved without its intercept (air 0, median ~1000), raw 16-bit values, normalised or
z-scored images ([0, 1], -3..10: no air, no bone). What it cannot see: an MR volume whose zero background
fills more than half of it and whose tissue reaches above 200 units reads as an air-free crop (median ~0,
"bone" above 200); such files are stopped only by a DICOM Modality. The phantoms (knee and spine, whole
and cropped to one vertebra or to the bones' box) all pass (``tests/test_ct_readers.py``).

To keep the check cheap on a 512 x 512 x 600 CT the statistics are taken on at most
:data:`SAMPLE_VOXELS` voxels, evenly strided through the volume.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from orthogen.errors import InputError

#: The 12-bit CT range, HU (air -1000 stored as -1024 at the bottom).
CT_RANGE_HU = (-1024.0, 3071.0)
#: Margins below and above the range (padding and metal lie beyond it).
RANGE_MARGINS_HU = (100.0, 1000.0)
#: Most voxels allowed above the range's top plus its margin.
MAX_FRACTION_ABOVE = 0.01
#: Fewest voxels within the range and its margins.
MIN_FRACTION_IN_RANGE = 0.5
#: Voxels below this are air (lung, padding): a CT of a whole body part always has some.
AIR_BELOW_HU = -200.0
#: Fewest voxels below AIR_BELOW_HU for "air present".
MIN_AIR_FRACTION = 0.001
#: A crop without air: its median lies in this soft-tissue range (fat -100 HU, muscle 40 HU).
TISSUE_MEDIAN_HU = (-200.0, 300.0)
#: ... and it holds some bone: voxels above this.
BONE_ABOVE_HU = 200.0
#: Fewest voxels above BONE_ABOVE_HU in a crop without air.
MIN_BONE_FRACTION = 0.0001
#: Most voxels the statistics are taken on.
SAMPLE_VOXELS = 2_000_000


def _sample(volume) -> np.ndarray:
    values = np.asarray(volume, dtype=np.float32).ravel()
    if values.size > SAMPLE_VOXELS:
        values = values[:: int(np.ceil(values.size / SAMPLE_VOXELS))]
    return values[np.isfinite(values)]


def _percent(fraction: float) -> str:
    return f"{100.0 * fraction:.3g} %"


def check_ct_hounsfield(volume, source: str | Path) -> None:
    """InputError naming ``source`` unless the values of ``volume`` look like a CT in HU (see the module docstring).

    Args:
        volume: the CT's voxels (any shape; numpy array or tensor), in what should be HU.
        source: the file the volume came from, for the message.
    """
    values = _sample(volume.numpy() if hasattr(volume, "numpy") else volume)
    if values.size == 0:
        return  # nothing finite: the readers refuse NaN / infinite voxels themselves
    low, high = CT_RANGE_HU[0] - RANGE_MARGINS_HU[0], CT_RANGE_HU[1] + RANGE_MARGINS_HU[1]
    above = float(np.mean(values > high))
    in_range = float(np.mean((values >= low) & (values <= high)))
    air = float(np.mean(values < AIR_BELOW_HU))
    bone = float(np.mean(values > BONE_ABOVE_HU))
    median = float(np.median(values))
    scale_ok = above <= MAX_FRACTION_ABOVE and in_range >= MIN_FRACTION_IN_RANGE
    air_ok = air >= MIN_AIR_FRACTION
    crop_ok = TISSUE_MEDIAN_HU[0] <= median <= TISSUE_MEDIAN_HU[1] and bone >= MIN_BONE_FRACTION
    if scale_ok and (air_ok or crop_ok):
        return
    came = (f"values {float(values.min()):.6g} to {float(values.max()):.6g}, median {median:.4g}, "
            f"{_percent(air)} below {AIR_BELOW_HU:g}, {_percent(bone)} above {BONE_ABOVE_HU:g}, "
            f"{_percent(above)} above {high:g}")
    raise InputError(
        f"values do not look like a CT in Hounsfield units ({came}); expected at most "
        f"{_percent(MAX_FRACTION_ABOVE)} above {high:g} HU and at least {_percent(MIN_FRACTION_IN_RANGE)} within "
        f"[{low:g}, {high:g}] HU, with air (at least {_percent(MIN_AIR_FRACTION)} below {AIR_BELOW_HU:g} HU) or, "
        f"for a crop without air, a median of {TISSUE_MEDIAN_HU[0]:g} to {TISSUE_MEDIAN_HU[1]:g} HU and bone (at "
        f"least {_percent(MIN_BONE_FRACTION)} above {BONE_ABOVE_HU:g} HU); an MR or other image, or a CT saved "
        "without its rescale intercept?", source)
