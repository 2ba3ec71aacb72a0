"""Inputs of the knee radiograph diffusion bundle: segmentation images, their datalist, the label radiographs.

One loader (:class:`LoadSegmentationd`) serves training, evaluation and inference, and the datalist
function runs it on a command-line input before anything is built, so a bad file stops at the door with one
line (DESIGN.md, bundle convention 5).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from orthogen.data.knee_radiograph_prepare import SPLITS
from orthogen.errors import InputError
from orthogen.io import read_radiograph
from orthogen.io.segmentation_image import SegmentationImage, read_segmentation_image
from orthogen.transforms.radiograph_segmentation import (SegmentationLevels, resample_segmentation_levels,
                                                         segmentation_levels)

logger = logging.getLogger(__name__)

#: Datalist keys of the two segmentations :func:`orthogen.data.knee_radiograph_prepare.render_case` writes.
CONDITIONS = ("contour", "contour_bone")


def _meta(source: str, spacing: tuple[float, float] | None, spacing_source: str) -> dict:
    meta = {"filename_or_obj": source, "spacing_source": spacing_source}
    if spacing is not None:
        meta["pixel_spacing_mm"] = tuple(float(v) for v in spacing)
    return meta


class LoadSegmentationd(MapTransform):
    """``{"image": path}`` -> ``{"image": MetaTensor (1, H, W) float32 in exactly {0, 0.5, 1}}``.

    The file is read with :func:`orthogen.io.segmentation_image.read_segmentation_image` (PNG, .npy, 2D
    NIfTI, DICOM image, DICOM SEG) and checked and snapped with
    :class:`orthogen.transforms.radiograph_segmentation.SegmentationLevels`. The MetaTensor's meta holds
    ``filename_or_obj``, ``spacing_source`` and, when the file gives one, ``pixel_spacing_mm`` (row, col).

    A segmentation of another size than ``spatial_size`` (a DICOM SEG on its radiograph's grid, or a PNG /
    NIfTI / .npy / DICOM image drawn at another resolution) is resampled to it: its values are first checked
    against the levels (an off-level value is refused on the file's own grid), then it is padded with
    background to the model's aspect ratio and each output pixel takes the majority level
    (:func:`orthogen.transforms.radiograph_segmentation.resample_segmentation_levels`); its spacing is scaled
    to match, the meta's ``source_spatial_shape`` holds its own (H, W), and an info line is logged. A DICOM
    SEG (segments "contour" and "bone" drawn on a radiograph, e.g. in OHIF) is read for the model's
    condition first. With ``condition``
    "contour_bone" it must have bone drawn (a contour-only SEG is refused: the model would read it as a leg
    without bones); with "contour" its bone is part of the leg (0.5), as in the contour training images.

    Args:
        keys: the keys holding segmentation paths.
        spatial_size: (H, W) the model needs; a segmentation of another size is resampled to it. None: any size
            (every segmentation stays on its grid).
        condition: the model's condition, "contour" or "contour_bone" (:data:`CONDITIONS`), for DICOM SEG
            inputs; None: a SEG is taken as drawn (bone 1 where it has bone). Image files are not affected.

    Raises InputError (one line naming the file) for an unreadable file, off-level values, or a DICOM SEG
    without the segments the condition needs.
    """

    def __init__(self, keys: KeysCollection = "image", spatial_size: Sequence[int] | None = (64, 64),
                 condition: str | None = None, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if condition is not None and condition not in CONDITIONS:
            raise InputError(f"expected one of {', '.join(CONDITIONS)} or null, got {condition!r}", "condition")
        self.spatial_size = None if spatial_size is None else tuple(int(v) for v in spatial_size)
        self.condition = condition
        self.levels = SegmentationLevels(spatial_size)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            segmentation = read_segmentation_image(d[key])
            meta = _meta(segmentation.source, segmentation.pixel_spacing_mm, segmentation.spacing_source)
            array = segmentation.image
            if segmentation.dicom_seg is not None:
                array = self._dicom_seg_levels(segmentation)
            array, meta = self._on_model_grid(array, segmentation, meta)
            image = MetaTensor(torch.from_numpy(array[None].copy()), meta=meta)
            d[key] = self.levels(image, segmentation.source)
        return d

    def _dicom_seg_levels(self, segmentation: SegmentationImage) -> np.ndarray:
        """A DICOM SEG's levels for the condition, on its radiograph's grid."""
        seg, levels = segmentation.dicom_seg, segmentation.image
        if self.condition == "contour_bone" and "bone" not in seg.drawn:
            raise InputError(f"DICOM SEG with no bone drawn (segments {', '.join(seg.segments)}); expected a segment "
                             "labelled 'bone' for a contour+bone model (a contour-only segmentation needs a contour "
                             "model)", segmentation.source)
        if self.condition == "contour":  # the contour condition has no bone level: bone is part of the leg
            levels = np.where(levels > 0, 0.5, 0.0).astype(np.float32)
        return levels

    def _on_model_grid(self, levels: np.ndarray, segmentation: SegmentationImage, meta: dict
                       ) -> tuple[np.ndarray, dict]:
        """``levels`` resampled to ``spatial_size`` when it is of another size (after its values are checked
        against the levels), with its spacing scaled; else as it is. The meta records the file's own shape."""
        own_shape = {"source_spatial_shape": tuple(int(v) for v in levels.shape)}
        if self.spatial_size is None or tuple(levels.shape) == self.spatial_size:
            return levels, ({**meta, **own_shape} if segmentation.dicom_seg is not None else meta)
        meta = {**meta, **own_shape}
        levels = segmentation_levels(levels, segmentation.source)  # off-level values refused on the file's grid
        resampled, factors = resample_segmentation_levels(levels, self.spatial_size)
        if segmentation.pixel_spacing_mm is not None:
            spacing = tuple(float(v * f) for v, f in zip(segmentation.pixel_spacing_mm, factors))
            meta["pixel_spacing_mm"] = spacing
            meta["spacing_source"] = (f"{segmentation.spacing_source}, resampled to the model's grid "
                                      f"(x{factors[0]:.4g} rows, x{factors[1]:.4g} columns)")
        kind = "DICOM SEG" if segmentation.dicom_seg is not None else "segmentation"
        logger.info(f"{segmentation.source}: {kind} of {levels.shape[0]}x{levels.shape[1]} pixels resampled to "
                    f"the model's {self.spatial_size[0]}x{self.spatial_size[1]}")
        return resampled, meta


class LoadRadiographImaged(MapTransform):
    """``{"label": path}`` -> ``{"label": MetaTensor (1, H, W) float32 in [0, 1]}``, bone bright.

    Read with :func:`orthogen.io.read_radiograph`, not MONAI's ``LoadImage``: a radiograph then reaches
    training and evaluation exactly as it reaches the X2CT bundle (16-bit PNG / 65535, 8-bit / 255, DICOM
    with its LUTs, one-line errors naming the file), in row-major (H, W) order (MONAI's PIL reader returns
    (W, H) unless told otherwise, and scales nothing). The spacing is ``d[spacing_key]`` when the item has
    one (the prepared datalist's ``pixel_spacing_mm``; PNGs carry none), else the file's.

    No film preparation (no collimation crop, no mirroring): these are the dataset's DRRs, each paired pixel for
    pixel with its segmentation. The meta holds ``filename_or_obj``, ``spacing_source`` and
    ``pixel_spacing_mm`` when known.
    """

    def __init__(self, keys: KeysCollection = "label", spacing_key: str = "pixel_spacing_mm",
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.spacing_key = spacing_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        spacing = d.get(self.spacing_key)
        for key in self.key_iterator(d):
            radiograph = read_radiograph(d[key], pixel_spacing_mm=spacing, prepare=False)  # paired with its segmentation
            d[key] = MetaTensor(torch.from_numpy(radiograph.image[None].astype(np.float32)),
                                meta=_meta(radiograph.source, radiograph.pixel_spacing_mm, radiograph.spacing_source))
        return d


def segmentation_datalist(input_segmentation: str = "", dataset_dir: str | Path = "", split: str = "test",
                          condition: str = "contour_bone", check: Callable[[dict], object] | None = None,
                          images: int | None = None) -> list[dict]:
    """What to run on: one segmentation file given on the command line, else a split of the prepared dataset.

    Args:
        input_segmentation: a segmentation file; gives ``[{"image": path}]`` after ``check(item)`` (the
            bundle passes its :class:`LoadSegmentationd`), so a bad file stops before any network is built.
        dataset_dir: a folder prepared by :func:`orthogen.data.knee_radiograph_prepare.prepare_knee_radiographs`
            (``datalist.json``, paths relative to it); used when ``input_segmentation`` is empty.
        split: "training", "validation" or "test".
        condition: which segmentation conditions the model, "contour" or "contour_bone".
        check: called on the command-line item; ignored for the prepared split (its files were written by
            orthogen).
        images: for the prepared split, this many items evenly spaced over it (every case and a spread of
            view angles, for evaluations that cannot afford all of them); None: all.

    Returns:
        ``[{"image": path}]``, or for the prepared split ``[{"image": <condition PNG>, "label": <radiograph
        PNG>, "case": ..., "angle_deg": ..., "pixel_spacing_mm": [row, col]}, ...]`` with absolute paths.

    Raises InputError naming the argument or the datalist file.
    """
    if condition not in CONDITIONS:
        raise InputError(f"expected one of {', '.join(CONDITIONS)}, got {condition!r}", "condition")
    if input_segmentation:
        item = {"image": str(input_segmentation)}
        if check is not None:
            check(item)
        return [item]
    if split not in SPLITS:
        raise InputError(f"expected one of {', '.join(SPLITS)}, got {split!r}", "split")
    if not str(dataset_dir):
        raise InputError("no input segmentation and no dataset_dir; expected a segmentation file "
                         "(input_segmentation) or a prepared dataset folder", "dataset_dir")
    folder = Path(dataset_dir)
    listing = folder / "datalist.json"
    if not listing.is_file():
        raise InputError("no datalist.json; prepare the dataset first with "
                         "orthogen.data.knee_radiograph_prepare.prepare_knee_radiographs", folder)
    try:
        items = json.loads(listing.read_text())[split]
        result = [{"image": str(folder / item[condition]), "label": str(folder / item["image"]),
                   "case": item["case"], "angle_deg": float(item["angle_deg"]),
                   "pixel_spacing_mm": [float(v) for v in item["pixel_spacing_mm"]]} for item in items]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON ({exc})", listing) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"expected a {split!r} list of items with keys image, {condition}, case, angle_deg and "
                         f"pixel_spacing_mm ({type(exc).__name__}: {exc})", listing) from None
    if not result:
        raise InputError(f"the {split!r} split is empty", listing)
    if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 1):
        raise InputError(f"expected a whole number >= 1 or null, got {images!r}", "images")
    if images is None or images >= len(result):
        return result
    return [result[round(i * (len(result) - 1) / max(images - 1, 1))] for i in range(images)]
