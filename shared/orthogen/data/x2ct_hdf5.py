"""The X2CT case file: one HDF5 per case with the CT and its two radiographs (kylekma/X2CT's layout).

Datasets: ``ct`` (D, H, W) float32 HU; ``xray1`` (S, S) float32 [0, 1] = AP; ``xray2`` (S, S) = lateral.
Attributes: ``affine`` (4, 4) voxel -> RAS mm of ``ct``, ``spacing_mm`` (3,), ``axcodes`` ("IAL"),
``xray1_pixel_spacing_mm`` / ``xray2_pixel_spacing_mm`` (row, col, mm at the detector), ``source`` (where
the CT came from). Optional attributes (written when known, e.g. by ``orthogen prepare knee-ct``; files
without them still read, the fields then being None): ``slice_thickness_mm`` (the source CT's slice
thickness), ``source_spacing_mm`` (3,) (the source CT's voxel size per stored array axis, before
resampling), ``magnification`` (source-to-detector / source-to-isocenter distance of the DRRs, so the
spacing at the isocenter is the detector spacing / magnification).

The CT's axes are *view-aligned* (axcodes "IAL"): D runs superior -> inferior, H posterior -> anterior,
W patient right -> left. The AP image's rows and columns are (D, W), the lateral image's (D, H) — the
orientation contract of :class:`orthogen.networks.x2ct_gan.X2CTGenerator`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from orthogen.errors import InputError
from orthogen.io.atomic_write import atomic_file

#: Orientation codes of the CT axes (D, H, W): toward inferior, anterior, patient left.
VIEW_ALIGNED_AXCODES = "IAL"
#: X2CTCase fields stored as attributes only when set (files written before they existed lack them).
_OPTIONAL_ATTRIBUTES = ("slice_thickness_mm", "source_spacing_mm", "magnification")


@dataclass(frozen=True)
class X2CTCase:
    """One case. ``ct_hu`` may be None for radiograph-only inputs."""

    ap: np.ndarray  # (S, S) float32 [0, 1]
    lateral: np.ndarray  # (S, S) float32 [0, 1]
    ct_hu: np.ndarray | None  # (D, H, W) float32 HU
    affine: np.ndarray  # (4, 4) voxel -> RAS mm of the CT grid
    ap_pixel_spacing_mm: tuple[float, float]
    lateral_pixel_spacing_mm: tuple[float, float]  # (row, col) mm at the detector
    source: str = ""
    slice_thickness_mm: float | None = None  # of the source CT, mm
    source_spacing_mm: tuple[float, float, float] | None = None  # source CT voxel size per stored axis, mm
    magnification: float | None = None  # SDD / SID of the DRRs


def write_x2ct_case(path: str | Path, case: X2CTCase) -> Path:
    """Write ``case`` to ``path`` (.h5) atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("ct", data=np.asarray(case.ct_hu, dtype=np.float32), compression="gzip")
            f.create_dataset("xray1", data=np.asarray(case.ap, dtype=np.float32), compression="gzip")
            f.create_dataset("xray2", data=np.asarray(case.lateral, dtype=np.float32), compression="gzip")
            f.attrs["affine"] = np.asarray(case.affine, dtype=np.float64)
            f.attrs["spacing_mm"] = np.linalg.norm(np.asarray(case.affine)[:3, :3], axis=0)
            f.attrs["axcodes"] = VIEW_ALIGNED_AXCODES
            f.attrs["xray1_pixel_spacing_mm"] = np.asarray(case.ap_pixel_spacing_mm, dtype=np.float64)
            f.attrs["xray2_pixel_spacing_mm"] = np.asarray(case.lateral_pixel_spacing_mm, dtype=np.float64)
            f.attrs["source"] = case.source
            for name in _OPTIONAL_ATTRIBUTES:
                value = getattr(case, name)
                if value is not None:
                    f.attrs[name] = np.asarray(value, dtype=np.float64)
    return path


def read_x2ct_case(path: str | Path, require_ct: bool = True) -> X2CTCase:
    """Read a case file, checking that both views are there, 2D, square and of one size.

    Raises:
        InputError: missing / empty / non-HDF5 file, a missing view or CT, mismatched view sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", path) from None
    with f:
        if len(f.keys()) == 0:
            raise InputError("the HDF5 file is empty; expected datasets 'ct', 'xray1' (AP), 'xray2' (lateral)", path)
        views = [name for name in ("xray1", "xray2") if name in f]
        if len(views) != 2:
            have = views[0] + (" (AP)" if views and views[0] == "xray1" else " (lateral)") if views else "none"
            raise InputError(f"expected both views 'xray1' (AP) and 'xray2' (lateral), found {have}", path)
        ap, lateral = np.asarray(f["xray1"], dtype=np.float32), np.asarray(f["xray2"], dtype=np.float32)
        check_view_pair(ap, lateral, str(path))
        ct = np.asarray(f["ct"], dtype=np.float32) if "ct" in f else None
        if require_ct and ct is None:
            raise InputError("expected a dataset 'ct' (D, H, W) in HU", path)
        if ct is not None and ct.ndim != 3:
            raise InputError(f"expected 'ct' with 3 dimensions, got shape {ct.shape}", path)
        affine = np.asarray(f.attrs.get("affine", np.eye(4)), dtype=np.float64)
        return X2CTCase(
            ap=ap,
            lateral=lateral,
            ct_hu=ct,
            affine=affine,
            ap_pixel_spacing_mm=tuple(float(v) for v in f.attrs.get("xray1_pixel_spacing_mm", (1.0, 1.0))),
            lateral_pixel_spacing_mm=tuple(float(v) for v in f.attrs.get("xray2_pixel_spacing_mm", (1.0, 1.0))),
            source=str(f.attrs.get("source", "")),
            slice_thickness_mm=_optional_number(f.attrs.get("slice_thickness_mm")),
            source_spacing_mm=None if "source_spacing_mm" not in f.attrs
            else tuple(float(v) for v in np.ravel(f.attrs["source_spacing_mm"])),
            magnification=_optional_number(f.attrs.get("magnification")),
        )


def _optional_number(value) -> float | None:
    return None if value is None else float(np.ravel(value)[0])


def check_view_pair(ap: np.ndarray, lateral: np.ndarray, source: str) -> None:
    """Both views 2D, square and the same size."""
    for name, view in (("AP", ap), ("lateral", lateral)):
        if view.ndim != 2 or view.shape[0] != view.shape[1]:
            raise InputError(f"expected the {name} view as a square 2D image, got shape {view.shape}", source)
    if ap.shape != lateral.shape:
        raise InputError(f"mismatched view sizes: AP {ap.shape} vs lateral {lateral.shape}", source)
