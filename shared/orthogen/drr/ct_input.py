"""The CT a DRR is rendered from, read from a file: a CT in HU, thick enough to be projected.

Every place that renders DRRs of a user's CT file (``orthogen drr``, the data preparations of the X2CT, knee
radiograph and knee CT datasets) reads it here, so each refuses the same inputs with the same one line.
"""
from __future__ import annotations

from pathlib import Path

from orthogen.drr.arguments import thick_enough_for_drr
from orthogen.errors import InputError, OrthoGenError


def read_ct_for_drr(path: str | Path):
    """``orthogen.io.read_ct(path, check_hu=True)``, then :func:`~orthogen.drr.arguments.thick_enough_for_drr`.

    Returns the MetaTensor ``read_ct`` returns. Raises InputError naming the file: everything ``read_ct``
    refuses (a DICOM series of another Modality than CT among it), a volume without Modality CT whose values
    do not look like HU (:mod:`orthogen.io.ct_values`), a volume thinner than
    :data:`~orthogen.drr.arguments.MIN_DRR_VOXELS` voxels along an axis; and, should a reader fail on an odd
    file with anything but InputError (a reader bug), still one line naming the file (the cause chained).
    """
    from orthogen.io import read_ct

    try:
        volume = read_ct(path, check_hu=True)
    except OrthoGenError:
        raise
    except Exception as error:
        raise InputError(f"could not be read as a CT ({type(error).__name__}: {error})", path) from error
    thick_enough_for_drr(volume.shape, path)
    return volume
