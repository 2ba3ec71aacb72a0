"""A small CNN that embeds CT slices for FID, the slices it sees, and its self-supervised training on phantoms.

FID needs a feature network, and no wheel ships one offline (pytorch-fid, torch-fidelity and clean-fid
download Inception weights at run time, and Inception needs torchvision, which cannot import here). So
the default is :class:`SliceFeatureNet`, a few strided MONAI ``Convolution`` blocks, global average
pooling and a linear layer: ``(N, 1, H, W)`` in [0, 1] -> ``(N, F)``. It has no normalisation layers, so
its features keep the slices' absolute intensities (an instance norm would hide an HU shift).

It is trained by a simple supervised task that needs no labels beyond the geometry
(:func:`train_slice_features`): from the features, predict which plane a slice is (axial, coronal,
sagittal; cross-entropy) and where along its axis it lies (0 to 1; squared error). The slices come from
:func:`ras_slice_stack`, which the FID (:mod:`orthogen.metrics.slice_fid`) uses too, so the network is
scored on what it was trained on:

- the volume is turned to RAS with nibabel's ``as_closest_canonical`` and sliced in the display
  orientation of :func:`orthogen.montage.ras_slices` (axial: rows anterior -> posterior, columns patient
  right -> left; coronal: rows superior -> inferior, columns right -> left; sagittal: rows superior ->
  inferior, columns anterior -> posterior);
- HU are windowed to [0, 1] by ``window_hu`` (default -1000 to 2000 HU: air to cortical bone);
- each slice is padded with air to a square in mm (keeping its aspect) and resized to ``size`` x ``size``
  (bilinear, antialiased).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from orthogen.errors import InputError

logger = logging.getLogger(__name__)

SLICE_PLANES = ("axial", "coronal", "sagittal")
#: HU mapped to 0 and 1 (clipped outside) before a slice is embedded.
SLICE_WINDOW_HU = (-1000.0, 2000.0)
#: Side in pixels of the square slices the network sees.
SLICE_SIZE = 64
SLICE_FEATURE_NAME = "SliceFeatureNet"


def ras_slice_stack(volume_hu, affine, plane: str, *, size: int = SLICE_SIZE,
                    window_hu: tuple[float, float] = SLICE_WINDOW_HU,
                    stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``stride``-th slice of one plane of an (X, Y, Z) HU CT, as the feature network sees it.

    Args:
        volume_hu: (X, Y, Z) CT in HU; ``affine``: (4, 4) voxel -> RAS mm.
        plane: "axial", "coronal" or "sagittal".

    Returns:
        ``(slices, positions)``: (N, 1, size, size) float32 in [0, 1], and (N,) float32 relative positions
        in [0, 1] along the plane's normal in the canonical (RAS) index order: axial inferior -> superior,
        coronal posterior -> anterior, sagittal left -> right.
    """
    if plane not in SLICE_PLANES:
        raise InputError(f"expected one of {SLICE_PLANES}, got {plane!r}", "plane")
    array = np.asarray(volume_hu.detach().cpu().numpy() if isinstance(volume_hu, torch.Tensor) else volume_hu)
    if array.dtype.kind not in "fiu" or array.ndim != 3 or min(array.shape) < 2:
        raise InputError(f"expected a real (X, Y, Z) CT in HU, got {array.dtype} {array.shape}", "volume_hu")
    if not np.all(np.isfinite(array)):
        raise InputError("expected finite HU values, got NaN or inf", "volume_hu")
    matrix = np.asarray(affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise InputError(f"expected a finite invertible (4, 4) voxel -> RAS mm matrix, got shape {matrix.shape}",
                         "affine")
    low, high = (float(v) for v in window_hu)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"expected (low, high) HU with low < high, got {window_hu!r}", "window_hu")
    if int(size) != size or size < 8:
        raise InputError(f"expected a whole number of pixels >= 8, got {size!r}", "size")
    if int(stride) != stride or stride < 1:
        raise InputError(f"expected a whole number >= 1, got {stride!r}", "stride")
    image = nib.as_closest_canonical(nib.Nifti1Image(array.astype(np.float32), matrix))
    sx, sy, sz = (float(s) for s in image.header.get_zooms()[:3])
    vol = torch.from_numpy(np.asarray(image.dataobj, dtype=np.float32).copy())
    vol = ((vol - low) / (high - low)).clamp(0.0, 1.0)
    if plane == "axial":  # [k] = vol[::-1, ::-1, k].T: rows y, cols x
        stack, row_mm, col_mm = vol.flip(0, 1).permute(2, 1, 0), sy, sx
    elif plane == "coronal":  # [j] = vol[::-1, j, ::-1].T: rows z, cols x
        stack, row_mm, col_mm = vol.flip(0, 2).permute(1, 2, 0), sz, sx
    else:  # [i] = vol[i, ::-1, ::-1].T: rows z, cols y
        stack, row_mm, col_mm = vol.flip(1, 2).permute(0, 2, 1), sz, sy
    n = stack.shape[0]
    index = torch.arange(0, n, int(stride))
    stack = stack[index]
    rows, cols = stack.shape[1:]
    side_mm = max(rows * row_mm, cols * col_mm)  # pad to a square field of view, air (0) around
    pad_rows = int(round(side_mm / row_mm)) - rows
    pad_cols = int(round(side_mm / col_mm)) - cols
    stack = F.pad(stack[:, None], (pad_cols // 2, pad_cols - pad_cols // 2, pad_rows // 2, pad_rows - pad_rows // 2))
    stack = F.interpolate(stack, size=(int(size), int(size)), mode="bilinear", align_corners=False, antialias=True)
    return stack.clamp(0.0, 1.0).contiguous(), (index.float() / max(n - 1, 1))


class SliceFeatureNet(nn.Module):
    """CT slice encoder for FID: ``(N, 1, H, W)`` in [0, 1] -> ``(N, features)``.

    Args:
        features: length F of the embedding.
        channels: output channels of the strided 3x3 convolution blocks (each halves H and W).
        name: the name printed with every FID computed on these features (set it to say which weights).

    ``heads(features)`` gives the training task's outputs: (N, 3) plane logits and (N,) relative positions.
    """

    def __init__(self, features: int = 64, channels: Sequence[int] = (16, 32, 64, 64), name: str = SLICE_FEATURE_NAME):
        super().__init__()
        if int(features) != features or features < 1:
            raise InputError(f"expected a positive whole number, got {features!r}", "features")
        if len(channels) == 0 or any(int(c) != c or c < 1 for c in channels):
            raise InputError(f"expected positive channel counts, got {list(channels)!r}", "channels")
        blocks, previous = [], 1
        for count in channels:
            blocks.append(Convolution(2, previous, int(count), strides=2, kernel_size=3, act="LEAKYRELU", norm=None))
            previous = int(count)
        self.encoder = nn.Sequential(*blocks)
        self.embed = nn.Linear(previous, int(features))
        self.plane_head = nn.Linear(int(features), len(SLICE_PLANES))
        self.position_head = nn.Linear(int(features), 1)
        self.name = str(name)

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        if slices.ndim != 4 or slices.shape[1] != 1:
            raise InputError(f"expected slices of shape (N, 1, H, W), got {tuple(slices.shape)}", "slices")
        return self.embed(self.encoder(slices).mean(dim=(2, 3)))

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.plane_head(features), self.position_head(features)[:, 0]


def slice_feature_network(weights: str | Path | None = None, name: str | None = None,
                          **network_args) -> SliceFeatureNet:
    """A :class:`SliceFeatureNet`, with ``weights`` (a plain state_dict file) loaded when given.

    Its ``name`` is ``name``, else ``"SliceFeatureNet[<weights file name>]"``, else ``"SliceFeatureNet[untrained]"``
    (random weights: only for tests; an FID on them is not comparable across seeds).
    """
    if name is None:
        name = f"{SLICE_FEATURE_NAME}[{Path(weights).name if weights is not None else 'untrained'}]"
    network = SliceFeatureNet(name=name, **network_args)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise InputError("file not found; expected a SliceFeatureNet state_dict (.pt)", path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            network.load_state_dict(state)
        except RuntimeError as error:
            raise InputError(f"the weights do not fit SliceFeatureNet({network_args}): "
                             f"{str(error).splitlines()[0]}", path) from None
    return network.eval()


def phantom_slice_volumes(count: int, shape: Sequence[int] = (64, 64, 64), spacing: Sequence[float] = (2.5, 2.5, 2.5),
                          first_seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` phantom knees (seeds ``first_seed``...) as (X, Y, Z) HU volumes with their RAS affines."""
    from orthogen.phantoms import KneePhantom

    volumes = []
    for seed in range(first_seed, first_seed + int(count)):
        ct = KneePhantom.from_seed(seed).render(tuple(shape), tuple(spacing))
        volumes.append((ct.volume_hu, ct.affine))
    return volumes


def slice_training_set(volumes: Sequence[tuple[np.ndarray, np.ndarray]], size: int = SLICE_SIZE,
                       stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every plane's slices of ``volumes``: ((M, 1, size, size) [0, 1], (M,) plane index, (M,) position)."""
    if len(volumes) == 0:
        raise InputError("expected at least one (volume_hu, affine) pair, got none", "volumes")
    slices, planes, positions = [], [], []
    for volume_hu, affine in volumes:
        for p, plane in enumerate(SLICE_PLANES):
            stack, position = ras_slice_stack(volume_hu, affine, plane, size=size, stride=stride)
            slices.append(stack)
            planes.append(torch.full((stack.shape[0],), p, dtype=torch.int64))
            positions.append(position)
    return torch.cat(slices), torch.cat(planes), torch.cat(positions)


def train_slice_features(network: SliceFeatureNet, volumes: Sequence[tuple[np.ndarray, np.ndarray]], *,
                         steps: int = 1000, batch_size: int = 32, learning_rate: float = 1e-3,
                         position_weight: float = 1.0, seed: int = 0, size: int = SLICE_SIZE, stride: int = 1,
                         device: str | torch.device = "cpu", log_every: int = 100) -> list[float]:
    """Train ``network`` to tell each slice's plane and relative position; returns the loss of every step.

    Loss = cross-entropy(plane) + ``position_weight`` * MSE(position), Adam, random minibatches of
    ``batch_size`` slices drawn (seeded) from every plane of every volume (see :func:`slice_training_set`),
    ``size`` x ``size`` pixels (compute FID at the same size). The network is left in eval mode.
    """
    if int(steps) != steps or steps < 1:
        raise InputError(f"expected a whole number of steps >= 1, got {steps!r}", "steps")
    if int(batch_size) != batch_size or batch_size < 1:
        raise InputError(f"expected a whole number >= 1, got {batch_size!r}", "batch_size")
    slices, planes, positions = slice_training_set(volumes, size=size, stride=stride)
    device = torch.device(device)
    network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(int(seed))
    losses = []
    for step in range(int(steps)):
        index = torch.randint(0, slices.shape[0], (int(batch_size),), generator=generator)
        x, plane, position = slices[index].to(device), planes[index].to(device), positions[index].to(device)
        logits, predicted = network.heads(network(x))
        loss = F.cross_entropy(logits, plane) + position_weight * F.mse_loss(predicted, position)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
        if log_every and (step + 1) % log_every == 0:
            logger.info("slice features step %d/%d: loss %.4f", step + 1, steps, float(np.mean(losses[-log_every:])))
    network.eval()
    return losses
