"""The conditioning of the knee CT diffusion model beside its radiographs: pixel spacing and slice thickness.

The model (:class:`orthogen.networks.BiplanarCTDiffusion`) is conditioned on two sizes in mm, added to
batch items by :class:`BiplanarConditioningd` after :class:`orthogen.data.biplanar_input.LoadBiplanarInputd`:

- ``pixel_spacing``: mm per pixel of the network's input views at the isocentre, the mean of the two
  views' row and column spacings. For a case file: its DRRs' detector spacings / its magnification
  (``magnification`` where the file has none); for radiograph files: the spacing the loader derived
  (the view-aligned affine's voxel size, from the file's spacing or ``--pixel_spacing``).
- ``slice_thickness``: of the CT, mm. For a case file its ``slice_thickness_mm`` (the source CT's);
  for radiograph files it must be given (``slice_thickness_mm``, the bundle's ``--slice_thickness``):
  the thickness the generated CT should resemble. A given value overrides a case file's.

Radiograph files must also have the same pixel size (rows x columns): the two views of one knee come
from one detector, and views of different sizes would be stretched apart by the preprocessing. Every
problem raises one :class:`~orthogen.errors.InputError` line.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform

from orthogen.data.x2ct_hdf5 import read_x2ct_case
from orthogen.errors import InputError


def _positive_mm(value, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a number of mm above 0, got {value!r}", name) from None
    if not (math.isfinite(number) and number > 0) or isinstance(value, bool):
        raise InputError(f"expected a number of mm above 0, got {value!r}", name)
    return number


class BiplanarConditioningd(MapTransform):
    """Adds ``pixel_spacing`` and ``slice_thickness`` (float32 scalars, mm) to a loaded bi-planar item.

    Args:
        slice_thickness_mm: the CT slice thickness to condition on; None: the case file's (radiograph
            files then stop with one line asking for ``--slice_thickness``).
        magnification: source-to-detector / source-to-isocentre distance of case files without one.
    """

    def __init__(self, slice_thickness_mm: float | None = None, magnification: float = 1.5):
        super().__init__(keys=["image"])
        self.slice_thickness_mm = _positive_mm(slice_thickness_mm, "slice_thickness")
        self.magnification = _positive_mm(magnification, "radiograph_magnification")

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if d.get("h5"):
            case = read_x2ct_case(d["h5"], require_ct=False)
            magnification = case.magnification or self.magnification
            spacing = float(np.mean([*case.ap_pixel_spacing_mm, *case.lateral_pixel_spacing_mm])) / magnification
            thickness = self.slice_thickness_mm if self.slice_thickness_mm is not None else case.slice_thickness_mm
            if thickness is None:
                raise InputError("no slice_thickness_mm in the case file; set the CT slice thickness in mm with "
                                 "--slice_thickness, e.g. --slice_thickness 1.0", d["h5"])
            _positive_mm(thickness, str(d["h5"]))
        else:
            self._check_view_sizes(d)
            affine = np.asarray(d["image"].meta["affine"], dtype=np.float64)
            spacing = float(np.mean(np.linalg.norm(affine[:3, :3], axis=0)))
            thickness = self.slice_thickness_mm
            if thickness is None:
                raise InputError("no slice thickness for radiograph inputs; set the CT slice thickness to condition "
                                 "on in mm with --slice_thickness, e.g. --slice_thickness 1.0", "slice_thickness")
        d["pixel_spacing"] = torch.tensor(spacing, dtype=torch.float32)
        d["slice_thickness"] = torch.tensor(float(thickness), dtype=torch.float32)
        return d

    @staticmethod
    def _check_view_sizes(d: Mapping) -> None:
        from orthogen.io import read_radiograph

        ap, lateral = (read_radiograph(d[view]).image.shape for view in ("ap", "lateral"))
        if ap != lateral:
            raise InputError(f"views of different sizes: expected the AP radiograph's {ap[0]}x{ap[1]} pixels "
                             f"(one detector), got {lateral[0]}x{lateral[1]}", d["lateral"])
