"""Re-projection error: DRRs of a generated CT against the radiographs it was generated from.

A CT generated from an AP and a lateral radiograph should project back onto them. The generated CT is
rendered with the project's differentiable DRR projector (:func:`orthogen.drr.render_drr`: HU ->
attenuation at ``energy_kev``, Joseph line integrals, each view divided by its own maximum unless a
fixed ``normalizer`` is given, clipped to [0, 1]) in the input views' geometry, optionally passed
through the same preprocessing as the input views, and each view is scored by PSNR with peak 1
(:func:`orthogen.metrics.radiograph.radiograph_psnr`: MONAI's ``PSNRMetric``, identical images at its
``PSNR_CAP_DB`` = 100 dB). The mean is over views, of the capped values.

The geometry must be the one the input views were rendered (or acquired) in, with its isocenter fixed
(``ProjectionGeometry.isocenter_mm``) when the generated CT's grid differs from the real one's: the
default isocenter is the centre of whatever volume is rendered. :func:`reprojection_geometry` frames a
detector on a CT as :func:`orthogen.drr.fit_detector` does and pins the isocenter to that CT's centre.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

from orthogen.errors import InputError
from orthogen.metrics.radiograph import radiograph_psnr

#: The input views of a knee CT-from-radiographs model, by name, and their gantry angles (deg).
DEFAULT_VIEWS = {"ap": 0.0, "lateral": 90.0}


def reprojection_geometry(volume_shape, affine, size: int, **fit_detector_args):
    """``orthogen.drr.fit_detector(volume_shape, affine, size, ...)`` with the isocenter pinned to the
    volume's centre (world RAS mm), so another CT on another grid is rendered about the same point."""
    from orthogen.drr import fit_detector

    geometry = fit_detector(volume_shape, affine, size, **fit_detector_args)
    centre_index = np.append((np.asarray(volume_shape, dtype=np.float64) - 1) / 2, 1.0)
    centre = (np.asarray(affine, dtype=np.float64) @ centre_index)[:3]
    return dataclasses.replace(geometry, isocenter_mm=tuple(float(c) for c in centre))


def reprojected_views(volume_hu, affine, geometry, views: Mapping[str, float] = DEFAULT_VIEWS, *,
                      energy_kev: float = 60.0, normalizer: float | None = None,
                      preprocess: Callable[[np.ndarray, str], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """DRRs of an (X, Y, Z) HU CT with its (4, 4) voxel -> RAS mm affine: ``{view name: (R, C) [0, 1]}``.

    Args:
        geometry: a :class:`orthogen.drr.ProjectionGeometry`, or ``{view name: geometry}``.
        views: view name -> gantry angle in degrees (0 = AP, 90 = lateral).
        energy_kev, normalizer: as :func:`orthogen.drr.render_drr` (``None``: each view by its own max).
        preprocess: ``f(image, view name) -> image`` applied to each rendered view, e.g. the radiograph
            preprocessing the input views went through.
    """
    from orthogen.drr import render_drr

    if not isinstance(views, Mapping) or not views:
        raise InputError(f"expected a mapping of view name -> gantry angle (deg), got {views!r}", "views")
    hu = volume_hu if isinstance(volume_hu, torch.Tensor) else torch.from_numpy(np.asarray(volume_hu))
    if hu.ndim != 3 or not bool(torch.isfinite(hu).all()):
        raise InputError(f"expected a finite (X, Y, Z) CT in HU, got shape {tuple(hu.shape)}", "volume_hu")
    rendered = {}
    for name, angle in views.items():
        view_geometry = geometry[name] if isinstance(geometry, Mapping) else geometry
        image = render_drr(hu, affine, view_geometry, [float(angle)], energy_kev=energy_kev,
                           normalizer=normalizer).image[0].detach().cpu().numpy()
        rendered[name] = np.asarray(preprocess(image, name)) if preprocess is not None else image
    return rendered


def reprojection_psnr(generated_hu, generated_affine, input_views: Mapping[str, np.ndarray], geometry,
                      angles_deg: Mapping[str, float] | None = None, *, energy_kev: float = 60.0,
                      normalizer: float | None = None,
                      preprocess: Callable[[np.ndarray, str], np.ndarray] | None = None) -> dict[str, float]:
    """PSNR (dB, peak 1, capped at 100 dB) of the generated CT's DRRs against the input views.

    Args:
        generated_hu: (X, Y, Z) generated CT in HU; ``generated_affine``: (4, 4) voxel -> RAS mm.
        input_views: view name -> (R, C) or (1, R, C) radiograph in [0, 1], e.g. ``{"ap": ..., "lateral": ...}``.
        geometry: the views' :class:`orthogen.drr.ProjectionGeometry` (one, or one per view name).
        angles_deg: view name -> gantry angle; default :data:`DEFAULT_VIEWS` (ap 0, lateral 90).
        energy_kev, normalizer, preprocess: as :func:`reprojected_views`; use the input views' own.

    Returns:
        ``{"PSNR_<view>": dB for each view, "PSNR_mean": their mean}``.

    Raises:
        InputError: naming the argument: no views, a view name without an angle, a view not in [0, 1]
            or of another shape than its DRR, a CT not finite (X, Y, Z).
    """
    if not isinstance(input_views, Mapping) or not input_views:
        raise InputError("expected a mapping of view name -> radiograph, got none", "input_views")
    angles = dict(DEFAULT_VIEWS if angles_deg is None else angles_deg)
    missing = [name for name in input_views if name not in angles]
    if missing:
        raise InputError(f"expected a gantry angle for every view, got none for {missing}", "angles_deg")
    rendered = reprojected_views(generated_hu, generated_affine, geometry, {n: angles[n] for n in input_views},
                                 energy_kev=energy_kev, normalizer=normalizer, preprocess=preprocess)
    scores = {}
    for name, view in input_views.items():
        view = np.asarray(view.detach().cpu().numpy() if isinstance(view, torch.Tensor) else view)
        view = view[0] if view.ndim == 3 and view.shape[0] == 1 else view
        if view.shape != rendered[name].shape:
            raise InputError(f"expected the shape of its DRR in this geometry, {rendered[name].shape}, got "
                             f"{view.shape}", f"input_views[{name!r}]")
        try:
            scores[f"PSNR_{name}"] = radiograph_psnr(rendered[name], view)
        except InputError as error:
            if error.source == "target":
                raise InputError(error.problem, f"input_views[{name!r}]") from None
            raise
    scores["PSNR_mean"] = float(math.fsum(scores.values()) / len(scores))
    return scores
