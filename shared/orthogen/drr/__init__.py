"""DRR engine: cone- and parallel-beam projection of CT (HU) and label volumes, differentiable, CPU/CUDA."""
from orthogen.drr.attenuation import hu_to_attenuation, water_attenuation_per_mm
from orthogen.drr.geometry import VIEW_ANGLES_DEG, ProjectionGeometry, fit_detector, orbit_angles, parse_views
from orthogen.drr.projector import line_integrals
from orthogen.drr.render import DRR, project_labels, render_drr

__all__ = [
    "DRR",
    "VIEW_ANGLES_DEG",
    "ProjectionGeometry",
    "fit_detector",
    "hu_to_attenuation",
    "line_integrals",
    "orbit_angles",
    "parse_views",
    "project_labels",
    "render_drr",
    "water_attenuation_per_mm",
]
