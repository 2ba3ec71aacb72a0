"""FID on CT slices: Frechet distance of slice embeddings, per plane (axial, coronal, sagittal) and overall.

There is no 3D feature network to compare CT volumes by, so each set's volumes are cut into axial,
coronal and sagittal slices in RAS display orientation (:func:`orthogen.networks.slice_features.ras_slice_stack`,
the slices the default network is trained on: HU windowed to [0, 1], padded to a square in mm, resized
to ``size``^2), every slice is embedded by ``network`` ((N, 1, H, W) in [0, 1] -> (N, F)), a Gaussian is
fitted per plane and set, and the FID of each plane is :func:`orthogen.metrics.frechet.frechet_distance`.
``overall`` is the mean of the planes' FIDs (each plane its own distribution; pooling the planes would fit
one Gaussian to three clusters).

The feature network is an argument; FIDs are comparable only under one network and its weights, so
every result carries the network's name (``network.name``, else its class name, unless ``network_name``
is given) and prints it. The real set's features can be computed once with :func:`slice_features` and
passed to :func:`slice_fid_of_features`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from orthogen.errors import InputError
from orthogen.metrics.frechet import frechet_distance_of_features
from orthogen.networks.slice_features import SLICE_PLANES, SLICE_SIZE, SLICE_WINDOW_HU, ras_slice_stack

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SliceFID:
    """FIDs of two CT sets' slices under one feature network.

    Attributes:
        network: the feature network's name (print it with every FID).
        per_plane: plane -> FID (squared feature units).
        overall: mean of ``per_plane``.
        slices: plane -> (slices of the first set, slices of the second set).
    """

    network: str
    per_plane: dict[str, float]
    overall: float
    slices: dict[str, tuple[int, int]]

    def as_dict(self) -> dict[str, float | str]:
        """``{"feature_network": name, "FID_<plane>": ..., "FID_overall": ...}``, a table row."""
        return {"feature_network": self.network, **{f"FID_{p}": v for p, v in self.per_plane.items()},
                "FID_overall": self.overall}

    def __str__(self) -> str:
        planes = ", ".join(f"{p} {v:.4g}" for p, v in self.per_plane.items())
        return f"FID [{self.network}]: {planes}; overall {self.overall:.4g}"


def feature_network_name(network: nn.Module, name: str | None = None) -> str:
    """``name``, else ``network.name``, else the network's class name."""
    if name is not None:
        return str(name)
    return str(getattr(network, "name", None) or type(network).__name__)


def _pairs(volumes, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(volumes, (str, bytes)) or not isinstance(volumes, Sequence) or len(volumes) == 0:
        raise InputError("expected a non-empty list of (volume_hu, affine) pairs, got "
                         f"{type(volumes).__name__}", name)
    pairs = []
    for index, item in enumerate(volumes):
        if not (isinstance(item, Sequence) and len(item) == 2):
            raise InputError(f"expected a (volume_hu, affine) pair, got {type(item).__name__}", f"{name}[{index}]")
        pairs.append((item[0], item[1]))
    return pairs


@torch.no_grad()
def slice_features(volumes: Sequence[tuple[np.ndarray, np.ndarray]], network: nn.Module, *,
                   planes: Sequence[str] = SLICE_PLANES, size: int = SLICE_SIZE,
                   window_hu: tuple[float, float] = SLICE_WINDOW_HU, stride: int = 1, batch_size: int = 64,
                   device: str | torch.device = "cpu", name: str = "volumes") -> dict[str, np.ndarray]:
    """plane -> (N, F) float64 features of every ``stride``-th slice of every (X, Y, Z) HU volume.

    Args:
        volumes: (volume_hu, affine) pairs: (X, Y, Z) HU and (4, 4) voxel -> RAS mm.
        network: (N, 1, size, size) in [0, 1] -> (N, F); run in eval mode, without gradients.
        name: the argument name used in error messages.
    """
    pairs = _pairs(volumes, name)
    was_training = network.training
    network.eval()
    features: dict[str, list[np.ndarray]] = {plane: [] for plane in planes}
    try:
        for index, (volume_hu, affine) in enumerate(pairs):
            for plane in planes:
                try:
                    stack, _ = ras_slice_stack(volume_hu, affine, plane, size=size, window_hu=window_hu, stride=stride)
                except InputError as error:
                    raise InputError(error.problem, f"{name}[{index}] {error.source}") from None
                for start in range(0, stack.shape[0], batch_size):
                    out = network(stack[start:start + batch_size].to(device))
                    if out.ndim != 2 or out.shape[0] != min(batch_size, stack.shape[0] - start):
                        raise InputError(f"expected features of shape (N, F) for (N, 1, H, W) slices, got "
                                         f"{tuple(out.shape)}", "network")
                    features[plane].append(out.detach().cpu().double().numpy())
    finally:
        network.train(was_training)
    return {plane: np.concatenate(chunks) for plane, chunks in features.items()}


def slice_fid_of_features(features1: Mapping[str, np.ndarray], features2: Mapping[str, np.ndarray],
                          network: str, names: tuple[str, str] = ("features1", "features2")) -> SliceFID:
    """:class:`SliceFID` of two plane -> (N, F) feature sets made by the network named ``network``
    (``names``: what error messages call the two sets)."""
    if set(features1) != set(features2) or not features1:
        raise InputError(f"expected features of the same planes, got {sorted(features1)} and {sorted(features2)}",
                         ", ".join(names))
    per_plane, counts = {}, {}
    for plane in features1:
        if np.shape(features1[plane])[0] <= np.shape(features1[plane])[1] or \
                np.shape(features2[plane])[0] <= np.shape(features2[plane])[1]:
            logger.warning("%s slices: fewer slices than features (%s, %s): singular covariances, FID biased",
                           plane, np.shape(features1[plane]), np.shape(features2[plane]))
        plane_names = (f"{names[0]} {plane} slices", f"{names[1]} {plane} slices")
        per_plane[plane] = frechet_distance_of_features(features1[plane], features2[plane], names=plane_names)
        counts[plane] = (int(np.shape(features1[plane])[0]), int(np.shape(features2[plane])[0]))
    result = SliceFID(network, per_plane, float(np.mean(list(per_plane.values()))), counts)
    logger.info("%s", result)
    return result


def slice_fid(generated: Sequence[tuple[np.ndarray, np.ndarray]], real: Sequence[tuple[np.ndarray, np.ndarray]],
              network: nn.Module, *, network_name: str | None = None, planes: Sequence[str] = SLICE_PLANES,
              size: int = SLICE_SIZE, window_hu: tuple[float, float] = SLICE_WINDOW_HU, stride: int = 1,
              batch_size: int = 64, device: str | torch.device = "cpu") -> SliceFID:
    """FID per plane and overall between the slices of two CT sets (generated and real, or any two).

    Args:
        generated, real: lists of (volume_hu, affine): (X, Y, Z) HU and (4, 4) voxel -> RAS mm; the grids
            may differ (each slice is resized to ``size``^2 over a square field of view).
        network: the feature network, (N, 1, size, size) in [0, 1] -> (N, F).
        network_name: the name to report; default :func:`feature_network_name` of ``network``.
        planes, size, window_hu (HU -> [0, 1]), stride (every stride-th slice), batch_size, device.

    Returns:
        :class:`SliceFID`: ``str()`` prints ``FID [<network>]: axial ..., coronal ..., sagittal ...; overall ...``.

    Raises:
        InputError: naming the argument: an empty set, a volume not finite (X, Y, Z), an affine not
            (4, 4), an unknown plane, features not (N, F), fewer than 2 slices per plane.
    """
    unknown = [p for p in planes if p not in SLICE_PLANES]
    if unknown or len(planes) == 0:
        raise InputError(f"expected planes among {SLICE_PLANES}, got {list(planes)}", "planes")
    options = dict(planes=planes, size=size, window_hu=window_hu, stride=stride, batch_size=batch_size, device=device)
    features1 = slice_features(generated, network, name="generated", **options)
    features2 = slice_features(real, network, name="real", **options)
    return slice_fid_of_features(features1, features2, feature_network_name(network, network_name),
                                 names=("generated", "real"))
