"""Writing a [0,1] grayscale image to an 8- or 16-bit PNG atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from orthogen.errors import InputError
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_file

#: Values this far outside [0,1] (floating-point noise) are clipped; farther ones are an error.
_RANGE_TOLERANCE = 1e-6


def write_png(image, path: str | Path, *, bit_depth: int = 8) -> Path:
    """Write ``image`` (H, W) in [0,1] (numpy or torch) as a grayscale PNG, row 0 at the top.

    Values are scaled to 0..255 (``bit_depth=8``) or 0..65535 (``bit_depth=16``) and rounded. The file
    is written to a temporary sibling and renamed into place. Returns ``path``.
    """
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise InputError(f"expected a .png file name, got {target.name!r}", target)
    if bit_depth not in (8, 16):
        raise InputError(f"expected 8 or 16, got {bit_depth!r}", "bit_depth")
    array = numpy_array(image, "image").astype(np.float64)
    if array.ndim != 2:
        raise InputError(f"expected a 2D (H, W) image, got shape {array.shape}", "image")
    if array.min() < -_RANGE_TOLERANCE or array.max() > 1 + _RANGE_TOLERANCE:
        raise InputError(f"expected values in [0, 1], got [{array.min():.6g}, {array.max():.6g}]", "image")
    top, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    pixels = np.rint(np.clip(array, 0.0, 1.0) * top).astype(dtype)
    with atomic_file(target) as temporary:
        Image.fromarray(pixels).save(temporary, format="PNG")
    return target
