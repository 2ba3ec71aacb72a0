"""DRR engine: cone- and parallel-beam projection of CT (HU) and label volumes, differentiable, CPU/CUDA.

The names below are loaded on first use (PEP 562), so ``orthogen.drr.arguments`` — the pure-Python
checks of detector size, distances, framing, energy and views — can be imported without torch; the
``orthogen`` command checks its flags with it before it loads the projector.
"""
from __future__ import annotations

import importlib

_SOURCES = {
    "DRR": "orthogen.drr.render",
    "VIEW_ANGLES_DEG": "orthogen.drr.arguments",
    "ProjectionGeometry": "orthogen.drr.geometry",
    "fit_detector": "orthogen.drr.geometry",
    "hu_to_attenuation": "orthogen.drr.attenuation",
    "line_integrals": "orthogen.drr.projector",
    "orbit_angles": "orthogen.drr.arguments",
    "parse_views": "orthogen.drr.arguments",
    "project_labels": "orthogen.drr.render",
    "read_ct_for_drr": "orthogen.drr.ct_input",
    "render_drr": "orthogen.drr.render",
    "view_aligned_affine": "orthogen.drr.view_aligned",
    "view_aligned_drr_images": "orthogen.drr.view_aligned",
    "view_aligned_drrs": "orthogen.drr.view_aligned",
    "water_attenuation_per_mm": "orthogen.drr.attenuation",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
