"""Loading a bi-planar input — an X2CT case file, or two radiograph files — as MONAI dictionary items.

One loader serves training, evaluation and inference, so a radiograph reaches the network the same way
whatever it came from.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from orthogen.data.x2ct_hdf5 import check_view_pair, read_x2ct_case
from orthogen.errors import InputError
from orthogen.io import read_radiograph
from orthogen.transforms import XrayPreprocess


def view_aligned_affine(spacing_dhw: tuple[float, float, float], size: int) -> np.ndarray:
    """Voxel -> RAS mm affine of a view-aligned ("IAL") S^3 cube centred on the world origin."""
    directions = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]).T  # columns: I, A, L
    affine = np.eye(4)
    affine[:3, :3] = directions * np.asarray(spacing_dhw, dtype=np.float64)
    affine[:3, 3] = -affine[:3, :3] @ np.full(3, (size - 1) / 2)
    return affine


class LoadBiplanarInputd(MapTransform):
    """``{"h5": path}`` or ``{"ap": path, "lateral": path}`` -> ``image`` (2, S, S) [+ ``label`` (1, S, S, S)].

    * ``h5``: an X2CT case file (:mod:`orthogen.data.x2ct_hdf5`); its radiographs are used as stored
      (they were preprocessed when the file was made) and its CT becomes ``label`` in HU, with the
      case's affine.
    * ``ap`` + ``lateral``: radiograph files (DICOM CR/DX, PNG, JPEG, NPY) read with
      :func:`orthogen.io.read_radiograph` and preprocessed with :class:`orthogen.transforms.XrayPreprocess`.

    ``image`` is a MetaTensor whose ``meta["affine"]`` is the affine the generated CT should carry:
    the case's own, or for radiographs a view-aligned cube whose voxel size is the preprocessed pixel
    spacing divided by ``magnification`` (D from the AP rows, W from the AP columns, H from the lateral
    columns).

    Args:
        size: S, the network's input size; radiographs are resized to it, case files must match it.
        magnification: source-to-detector / source-to-isocenter distance of the radiographs (1.5 for the
            DRRs of :func:`orthogen.data.x2ct_prepare.prepare_x2ct_dataset`'s defaults).
        require_label: raise if an ``h5`` item has no CT (training and evaluation need it).
        xray_threshold: threshold of the radiograph preprocessing (as the training data was made).
    """

    def __init__(self, size: int = 128, magnification: float = 1.5, require_label: bool = False,
                 xray_threshold: float | str = 0.02):
        super().__init__(keys=["h5", "ap", "lateral"], allow_missing_keys=True)
        self.size = size
        self.magnification = magnification
        self.require_label = require_label
        self.preprocess = XrayPreprocess(size=size, threshold=xray_threshold)

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
            radiograph = read_radiograph(d[view])
            image = MetaTensor(torch.from_numpy(radiograph.image[None]),
                               meta={"pixel_spacing_mm": radiograph.pixel_spacing_mm})
            out = self.preprocess.preprocess(image, str(d[view]))
            views.append(out[0].numpy())
            spacings.append(out.meta["pixel_spacing_mm"])
        check_view_pair(views[0], views[1], f"{d['ap']} + {d['lateral']}")
        (ap_rows, ap_cols), (_, lateral_cols) = spacings
        spacing_dhw = tuple(s / self.magnification for s in (ap_rows, lateral_cols, ap_cols))
        meta = {"affine": torch.as_tensor(view_aligned_affine(spacing_dhw, self.size)),
                "filename_or_obj": str(d["ap"])}
        d["image"] = MetaTensor(torch.from_numpy(np.stack(views)), meta=meta)
