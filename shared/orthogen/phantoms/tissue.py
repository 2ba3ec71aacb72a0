"""Tissues of the phantoms: their CT numbers (HU), the cancellous-bone texture, and the layers a
body or a bone is filled with."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class TissueHU:
    """CT numbers (HU) of each tissue class of a phantom, and the noise levels.

    Attributes:
        air, fat, muscle, skin, cortical, cancellous, disc: mean HU of each tissue.
        texture_hu: standard deviation (HU) of the cancellous texture around ``cancellous``.
        noise_hu: standard deviation (HU) of the white CT noise added to every voxel.
    """

    air: float = -1000.0
    fat: float = -100.0
    muscle: float = 40.0
    skin: float = 20.0
    cortical: float = 1400.0
    cancellous: float = 260.0
    disc: float = 90.0
    texture_hu: float = 20.0
    noise_hu: float = 15.0

    @classmethod
    def from_rng(cls, rng: np.random.Generator) -> TissueHU:
        """Values drawn uniformly within adult ranges; the ranges keep texture and noise inside
        cancellous 150-400 HU and cortical 1000-1800 HU."""
        return cls(
            fat=float(rng.uniform(-115.0, -85.0)),
            muscle=float(rng.uniform(35.0, 50.0)),
            skin=float(rng.uniform(10.0, 35.0)),
            cortical=float(rng.uniform(1250.0, 1550.0)),
            cancellous=float(rng.uniform(230.0, 310.0)),
            disc=float(rng.uniform(82.0, 98.0)),
            texture_hu=float(rng.uniform(12.0, 22.0)),
            noise_hu=float(rng.uniform(10.0, 20.0)),
        )


@dataclass(frozen=True, eq=False)
class CancellousTexture:
    """A smooth random field (HU, zero mean) in world mm: the marrow/trabecular mottle of cancellous bone.

    A sum of plane waves with random directions, wavelengths and phases; being a function of world
    position, it is the same at every grid resolution.

    Attributes:
        wave_vectors: (N, 3) angular wave numbers, rad/mm.
        phases: (N,) rad.
        std_hu: standard deviation of the field, HU.
    """

    wave_vectors: np.ndarray
    phases: np.ndarray
    std_hu: float

    @classmethod
    def from_rng(cls, rng: np.random.Generator, std_hu: float, n_waves: int = 8,
                 wavelength_mm: tuple[float, float] = (3.0, 9.0)) -> CancellousTexture:
        """``n_waves`` waves with isotropic random directions and wavelengths uniform in ``wavelength_mm``."""
        directions = rng.standard_normal((n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*wavelength_mm, size=n_waves)
        return cls(directions * (2 * math.pi / wavelengths)[:, None], rng.uniform(0, 2 * math.pi, n_waves), std_hu)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The field (HU) at world coordinates given as broadcastable float32 arrays (mm)."""
        amplitude = np.float32(self.std_hu * math.sqrt(2.0 / len(self.phases)))
        total = None
        for (kx, ky, kz), phase in zip(self.wave_vectors.astype(np.float32), self.phases.astype(np.float32)):
            wave = np.cos(kx * x + ky * y + (kz * z + phase))
            total = wave if total is None else total + wave
        return amplitude * total


# A field of HU offsets over world coordinates (broadcastable float32 arrays, mm).
HUField = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class TissueLayer:
    """A tissue that fills a solid from ``depth_mm`` below its surface inwards.

    Attributes:
        depth_mm: how far inside the surface the layer starts, mm (0 = at the surface).
        hu: the tissue's CT number, HU.
        texture: optional zero-mean HU field added to ``hu`` (e.g. the cancellous texture).
    """

    depth_mm: float
    hu: float
    texture: HUField | None = None


def soft_tissue_layers(tissue: TissueHU, skin_mm: float, fat_mm: float) -> list[TissueLayer]:
    """Skin, then subcutaneous fat, then muscle inside a body outline."""
    return [
        TissueLayer(0.0, tissue.skin),
        TissueLayer(skin_mm, tissue.fat),
        TissueLayer(skin_mm + fat_mm, tissue.muscle),
    ]


def bone_layers(tissue: TissueHU, cortical_mm: float, texture: HUField) -> list[TissueLayer]:
    """A cortical shell ``cortical_mm`` thick around textured cancellous bone."""
    return [TissueLayer(0.0, tissue.cortical), TissueLayer(cortical_mm, tissue.cancellous, texture)]
