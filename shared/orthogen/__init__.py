"""OrthoGen: generative orthopedic imaging — X-rays to CT, segmentations to radiographs.

Subpackages: ``io`` (CT and radiograph files), ``phantoms`` (procedural knee and spine CT),
``drr`` (digitally reconstructed radiographs), ``transforms`` (MONAI transforms), ``networks``,
``diffusion``, ``metrics`` and ``data`` (dataset preparation).
"""
from orthogen.errors import InputError, OrthoGenError

__version__ = "0.1.0"
__all__ = ["InputError", "OrthoGenError", "__version__"]
