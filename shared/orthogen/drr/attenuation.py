"""CT numbers (HU) to linear attenuation coefficients at an effective X-ray energy.

HU is defined against water: ``HU = 1000 (mu - mu_water) / mu_water``, so
``mu = mu_water (1 + HU / 1000)``, clamped at 0 (air). This treats the radiograph's effective energy as the
CT's own, the usual simplification of DRR renderers. ``mu_water`` comes from NIST XCOM (total attenuation
with coherent scattering, water, density 1 g/cm^3), interpolated log-log between the tabulated energies.
"""
from __future__ import annotations

import numpy as np
import torch

from orthogen.drr.arguments import ENERGY_RANGE_KEV
from orthogen.drr.arguments import energy_kev as checked_energy_kev

#: NIST XCOM water mass attenuation (cm^2/g) at photon energies (keV); with density 1 g/cm^3, in 1/cm.
_WATER_KEV = np.array([30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0])
_WATER_CM2_PER_G = np.array([0.3756, 0.2683, 0.2269, 0.2059, 0.1837, 0.1707, 0.1505])
assert (_WATER_KEV[0], _WATER_KEV[-1]) == ENERGY_RANGE_KEV  # the range the argument check accepts


def water_attenuation_per_mm(energy_kev: float) -> float:
    """Linear attenuation of water (1/mm) at ``energy_kev`` (30-150 keV)."""
    energy_kev = checked_energy_kev(energy_kev)
    per_cm = np.exp(np.interp(np.log(energy_kev), np.log(_WATER_KEV), np.log(_WATER_CM2_PER_G)))
    return float(per_cm) / 10.0


def hu_to_attenuation(volume_hu: torch.Tensor, energy_kev: float = 60.0) -> torch.Tensor:
    """Linear attenuation (1/mm, >= 0), same shape as ``volume_hu`` (HU)."""
    return torch.clamp(water_attenuation_per_mm(energy_kev) * (1.0 + volume_hu / 1000.0), min=0.0)
