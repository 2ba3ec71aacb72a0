"""OrthoGen: generative orthopedic imaging — X-rays to CT, segmentations to radiographs.

Subpackages: ``io`` (CT and radiograph files), ``phantoms`` (procedural knee and spine CT),
``drr`` (digitally reconstructed radiographs), ``transforms`` (MONAI transforms), ``networks``
(X2CT-GAN), ``losses``, ``engines`` (the X2CT-GAN trainer, LR schedules), ``metrics`` (the X2CT table),
``data`` (dataset layouts, preparation and bundle inputs), ``evaluation`` (baselines, text tables),
``handlers`` (ignite handlers), ``outputs`` (the bundles' prediction writers); modules ``montage`` (pictures),
``demo``, ``cli`` and ``errors``.
The package map and the bundle conventions are in docs/DESIGN.md.
"""
from orthogen.errors import InputError, OrthoGenError

__version__ = "0.1.0"
__all__ = ["InputError", "OrthoGenError", "__version__"]
