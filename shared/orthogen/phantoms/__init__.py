"""Procedural CT phantoms in HU with bone labels: a knee (left or right, straight or flexed) and a
lumbar spine (L1-L5).

Anatomy is drawn from a seed and defined in world millimetres (RAS), then sampled on any grid, so
the same seed gives the same anatomy at every resolution::

    ct = knee_phantom(seed=3)                                    # 128^3 at 1 mm
    ct = spine_phantom(seed=3, shape=(96, 96, 128), spacing=(2.0, 2.0, 1.5))
    ct = KneePhantom.from_seed(3).render_like_a_scan()            # the seed's scanner grid too
    knee = KneePhantom.from_seed(3, KneeRanges(flexion_deg=(0.0, 0.0)))  # narrower ranges
"""
from orthogen.phantoms.knee import KNEE_LABELS, KneePhantom, knee_phantom
from orthogen.phantoms.knee_ranges import KneeRanges
from orthogen.phantoms.phantom_ct import PhantomCT
from orthogen.phantoms.spine import SPINE_LABELS, SpinePhantom, spine_phantom
from orthogen.phantoms.tissue import TissueHU

__all__ = [
    "KNEE_LABELS",
    "SPINE_LABELS",
    "KneePhantom",
    "KneeRanges",
    "PhantomCT",
    "SpinePhantom",
    "TissueHU",
    "knee_phantom",
    "spine_phantom",
]
