"""The affine of a prediction on another grid than its input's: same field of view, other voxel count.

The knee CT diffusion model generates its CT at the cascade's highest resolution r (32, 64 or 128),
while the input item's affine (:class:`orthogen.data.biplanar_input.LoadBiplanarInputd`) belongs to the
case's CT grid or to the S^3 cube of the S x S radiographs. :func:`affine_for_grid` rescales it so the
r^3 grid covers the same cube (same centre, same edge in mm); :class:`PredictionGridAffined` sets it
on ``image`` for the writer (:class:`orthogen.outputs.x2ct_prediction_writer.SaveX2CTPredictiond`).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform


def affine_for_grid(affine, from_shape: Sequence[int], to_shape: Sequence[int]) -> np.ndarray:
    """Voxel -> world affine of a ``to_shape`` grid covering the same box as ``affine`` on ``from_shape``."""
    affine = np.asarray(affine, dtype=np.float64)
    source, target = np.asarray(from_shape, dtype=np.float64), np.asarray(to_shape, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = affine[:3, :3] * (source / target)
    centre = affine[:3, :3] @ ((source - 1) / 2) + affine[:3, 3]
    out[:3, 3] = centre - out[:3, :3] @ ((target - 1) / 2)
    return out


def input_grid(d: Mapping) -> tuple[int, ...]:
    """The grid ``image.meta["affine"]`` belongs to: the label CT's, else the radiographs' S^3 cube."""
    if d.get("label") is not None:
        return tuple(int(s) for s in d["label"].shape[-3:])
    return (int(d["image"].shape[-1]),) * 3


class PredictionGridAffined(MapTransform):
    """Sets ``image.meta["affine"]`` to the affine of ``pred``'s grid (see the module docstring)."""

    def __init__(self, keys="image", prediction_key: str = "pred"):
        super().__init__(keys=keys)
        self.prediction_key = prediction_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        target = tuple(d[self.prediction_key].shape[-3:])
        grid = input_grid(d)
        for key in self.key_iterator(d):
            image = d[key]
            meta = dict(getattr(image, "meta", {}))
            meta["affine"] = torch.as_tensor(affine_for_grid(meta["affine"], grid, target))
            d[key] = MetaTensor(torch.as_tensor(image), meta=meta)
        return d
