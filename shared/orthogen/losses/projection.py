"""Projection loss of X2CT-GAN: the generated CT must cast the same mean projections as the real CT."""
from __future__ import annotations

import torch
from torch import nn

from orthogen.errors import InputError


class ProjectionL1Loss(nn.Module):
    """Mean L1 distance between the mean-intensity projections of two volumes along D, H and W.

    As in X2CT (``output_map`` and ``map_projection_loss: l1``): each projection is the mean of the
    absolute voxel values along one spatial axis, the three per-axis L1 losses (mean reduction) are
    averaged. The absolute value is a no-op on the generator's non-negative output; it is kept so that
    the loss equals the reference's on any input.

    Shapes: ``forward(prediction, target)`` with both (B, C, D, H, W) -> scalar tensor.
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.ndim != 5 or prediction.shape != target.shape:
            raise InputError(
                f"expected prediction and target of one shape (B, C, D, H, W), got {tuple(prediction.shape)} "
                f"and {tuple(target.shape)}",
                "ProjectionL1Loss",
            )
        losses = [
            nn.functional.l1_loss(prediction.abs().mean(dim=axis), target.abs().mean(dim=axis)) for axis in (2, 3, 4)
        ]
        return torch.stack(losses).mean()
