"""The local datastore folder that the label app tests serve: phantom inputs made with orthogen."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from orthogen.data.case_layout import write_case
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, render_case
from orthogen.data.x2ct_prepare import X2CTPreparation, cases_of
from orthogen.io import write_png
from orthogen.phantoms import KneePhantom, spine_phantom

SPINE_SIZE = 32  # the shipped spine generator's cube


def write_label_app_studies(work: Path, root: Path) -> float:
    """Write into ``root``: spine_ap.png + spine_lateral.png (16-bit DRRs of one phantom vertebra, 32 px, no
    spacing in the files), knee_ap.png (a phantom knee's 64 px AP DRR) with its contour+bone segmentation
    as labels/final/knee_ap.png, and broken.png (not an image); ``work`` holds the intermediate files.
    Returns the spine views' detector pixel spacing in mm."""
    spine = spine_phantom(seed=7, shape=(48, 48, 64), spacing=(3.0, 3.0, 3.0))
    _, case = cases_of(write_case(spine.volume_hu, spine.labels, spine.affine, work, "spine_0007"),
                       X2CTPreparation(size=SPINE_SIZE))[0]
    write_png(case.ap, root / "spine_ap.png", bit_depth=16)
    write_png(case.lateral, root / "spine_lateral.png", bit_depth=16)
    knee = KneePhantom.from_seed(7).render((80, 80, 80), (2.0, 2.0, 2.0))  # the shipped models' phantom grid
    knee_case = write_case(knee.volume_hu, knee.labels, knee.affine, work, "knee_0007")
    view = render_case(Path(knee_case.image), work / "views", KneeRadiographPreparation(size=64, views=1))[0]
    shutil.copy(work / "views" / view["image"], root / "knee_ap.png")
    (root / "labels" / "final").mkdir(parents=True)
    shutil.copy(work / "views" / view["contour_bone"], root / "labels" / "final" / "knee_ap.png")
    (root / "broken.png").write_bytes(b"not a PNG file")
    return 1.5 * float(np.linalg.norm(case.affine[:3, 0]))  # the DRRs' magnification (1.5)
