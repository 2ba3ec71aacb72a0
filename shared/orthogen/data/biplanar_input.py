"""Loading a bi-planar input — an X2CT case file, or two radiograph files — as MONAI dictionary items.

One loader serves training, evaluation and inference, so a radiograph reaches the network the same way
whatever it came from.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from orthogen.data.x2ct_hdf5 import check_view_pair, read_x2ct_case
from orthogen.drr.view_aligned import view_aligned_affine
from orthogen.errors import InputError
from orthogen.io import Radiograph, read_radiograph
from orthogen.transforms import XrayPreprocess


def isocenter_spacing(radiograph: Radiograph, magnification: float) -> tuple[float, float]:
    """(row, col) mm per pixel at the isocentre: detector spacing / ``magnification``, or as is when the
    file's spacing is already in the patient plane (PixelSpacing, or ImagerPixelSpacing corrected by
    EstimatedRadiographicMagnificationFactor)."""
    spacing = radiograph.pixel_spacing_mm
    source = radiograph.spacing_source
    if source == "PixelSpacing" or source.startswith("ImagerPixelSpacing / "):
        return spacing
    return spacing[0] / magnification, spacing[1] / magnification


class LoadBiplanarInputd(MapTransform):
    """``{"h5": path}`` or ``{"ap": path, "lateral": path}`` -> ``image`` (2, S, S) [+ ``label`` (1, S, S, S)].

    * ``h5``: an X2CT case file (:mod:`orthogen.data.x2ct_hdf5`); its radiographs are used as stored
      (they were preprocessed when the file was made) and its CT becomes ``label`` in HU, with the
      case's affine.
    * ``ap`` + ``lateral``: radiograph files (DICOM CR/DX, PNG, JPEG, NPY) read with
      :func:`orthogen.io.read_radiograph` and preprocessed with :class:`orthogen.transforms.XrayPreprocess`.

    ``image`` is a MetaTensor whose ``meta["affine"]`` is the affine the generated CT should carry:
    the case's own, or for radiographs a view-aligned cube whose voxel size is the preprocessed pixel
    spacing at the isocentre (see :func:`isocenter_spacing`; D from the AP rows, W from the AP columns,
    H from the lateral columns). Its ``meta["filename_or_obj"]`` is the case file or the AP radiograph.

    Args:
        size: S, the network's input size; radiographs are resized to it, case files must match it.
        magnification: source-to-detector / source-to-isocenter distance of the radiographs (1.5 for the
            DRRs of :func:`orthogen.data.x2ct_prepare.prepare_x2ct_dataset`'s defaults).
        require_label: raise if an ``h5`` item has no CT (training and evaluation need it).
        xray_threshold: threshold of the radiograph preprocessing (as the training data was made).
        pixel_spacing_mm: (row, col) or one number, mm per pixel at the detector (as ImagerPixelSpacing)
            of both radiographs; overrides the files' own. None: the files must carry a spacing.
        plausible_extent_mm: (low, high) edge in mm of the CT cube the model was trained on (the bundle's
            metadata records it); a radiograph pair implying a cube more than ``extent_tolerance`` times
            outside that range is refused with one line saying the spacing, where it came from, the
            implied size and how to set it. None: no check.
        extent_tolerance: factor beyond the trained range that is still accepted.
    """

    def __init__(self, size: int = 128, magnification: float = 1.5, require_label: bool = False,
                 xray_threshold: float | str = 0.02, pixel_spacing_mm: float | Sequence[float] | None = None,
                 plausible_extent_mm: Sequence[float] | None = None, extent_tolerance: float = 2.0):
        super().__init__(keys=["h5", "ap", "lateral"], allow_missing_keys=True)
        if not (isinstance(magnification, (int, float)) and math.isfinite(magnification) and magnification > 0):
            raise InputError(f"expected a positive number, got {magnification!r}", "radiograph_magnification")
        self.size = size
        self.magnification = float(magnification)
        self.require_label = require_label
        self.preprocess = XrayPreprocess(size=size, threshold=xray_threshold)
        self.pixel_spacing_mm = _spacing_argument(pixel_spacing_mm)
        self.plausible_extent_mm = None if plausible_extent_mm is None else tuple(float(v) for v in plausible_extent_mm)
        self.extent_tolerance = float(extent_tolerance)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if d.get("h5"):
            self._load_case(d)
        elif d.get("ap") or d.get("lateral"):
            self._load_radiographs(d)
        else:
            raise InputError("expected an 'h5' case file, or both an 'ap' and a 'lateral' radiograph", "input")
        return d

    def _load_case(self, d: dict) -> None:
        case = read_x2ct_case(d["h5"], require_ct=self.require_label)
        if case.ap.shape[0] != self.size:
            raise InputError(f"expected radiographs of {self.size}x{self.size} (the network's size), got "
                             f"{case.ap.shape[0]}x{case.ap.shape[1]}", d["h5"])
        meta = {"affine": torch.as_tensor(case.affine), "filename_or_obj": str(d["h5"])}
        d["image"] = MetaTensor(torch.from_numpy(np.stack([case.ap, case.lateral])), meta=meta)
        if case.ct_hu is not None:
            d["label"] = MetaTensor(torch.from_numpy(case.ct_hu[None]), meta=dict(meta))

    def _load_radiographs(self, d: dict) -> None:
        missing = [view for view in ("ap", "lateral") if not d.get(view)]
        if missing:
            raise InputError(f"one view only: expected both an AP and a lateral radiograph, the {missing[0]} "
                             "one is missing", "input")
        views, spacings = [], []
        for view in ("ap", "lateral"):
            radiograph = read_radiograph(d[view], pixel_spacing_mm=self.pixel_spacing_mm)
            if radiograph.pixel_spacing_mm is None:
                raise InputError("no pixel spacing (no PixelSpacing or ImagerPixelSpacing tag, or a PNG/JPEG); "
                                 "set the detector pixel spacing in mm with --pixel_spacing, e.g. "
                                 "--pixel_spacing 0.15", d[view])
            spacing = isocenter_spacing(radiograph, self.magnification)
            image = MetaTensor(torch.from_numpy(radiograph.image[None]), meta={"pixel_spacing_mm": spacing})
            out = self.preprocess.preprocess(image, str(d[view]))
            self._check_extent(out, radiograph, view, d[view])
            views.append(out[0].numpy())
            spacings.append(out.meta["pixel_spacing_mm"])
        check_view_pair(views[0], views[1], f"{d['ap']} + {d['lateral']}")
        (ap_rows, ap_cols), (_, lateral_cols) = spacings
        spacing_dhw = (ap_rows, lateral_cols, ap_cols)
        meta = {"affine": torch.as_tensor(view_aligned_affine(spacing_dhw, self.size)),
                "filename_or_obj": str(d["ap"])}
        d["image"] = MetaTensor(torch.from_numpy(np.stack(views)), meta=meta)

    def _check_extent(self, preprocessed: MetaTensor, radiograph: Radiograph, view: str, file) -> None:
        """Refuse a radiograph whose spacing implies a CT cube far outside the trained sizes."""
        if self.plausible_extent_mm is None:
            return
        edge_mm = self.size * max(preprocessed.meta["pixel_spacing_mm"])
        low, high = self.plausible_extent_mm
        if low / self.extent_tolerance <= edge_mm <= high * self.extent_tolerance:
            return
        row, col = radiograph.pixel_spacing_mm
        raise InputError(
            f"implausible pixel spacing for this model: {row:g} x {col:g} mm ({radiograph.spacing_source}) makes "
            f"the cropped {view} view {edge_mm:.0f} mm across, but the model was trained on {low:.0f}-{high:.0f} mm; "
            "set the detector pixel spacing in mm with --pixel_spacing", file)


def _spacing_argument(value) -> tuple[float, float] | None:
    """None, one number or (row, col) -> None or a (row, col) pair of positive mm."""
    if value is None:
        return None
    values = [value] * 2 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    try:
        row, col = (float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"expected one number or two (row, col) in mm, got {value!r}", "pixel_spacing") from None
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise InputError(f"expected positive pixel spacings in mm, got {value!r}", "pixel_spacing")
    return row, col
