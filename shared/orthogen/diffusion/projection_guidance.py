"""Projection-guided sampling: each DDIM step pulls the CT estimate's DRRs towards the input radiographs.

A CT generated from an AP and a lateral radiograph should project back onto them (the re-projection
error of :mod:`orthogen.metrics.reprojection`). Guidance makes that a constraint during sampling, in
the manner of diffusion posterior sampling (Chung et al., ICLR 2023, "Diffusion posterior sampling for
general noisy inverse problems"), on the clean estimate rather than on x_t: at every DDIM step the
predicted clean CT x0 (highest resolution, data units [-1, 1]) is rendered by the project's
differentiable DRR projector (:func:`orthogen.drr.render_drr`) in the geometry the knee CT data were
prepared with, and moved one normalised gradient step down the views' mean squared error,

    x0 <- x0 - weight * (L / ||g||^2) g,   L = mean over views and pixels of (DRR(x0) - view)^2,  g = dL/dx0,

a Polyak step: to first order it removes the fraction ``weight`` of the loss (1: all of it, if the
projection were linear), so the step shrinks as the views come to agree and ``weight`` does not depend
on the loss's scale or the volume's size. (A step of fixed size per voxel, ``weight * g / rms(g)``, was
tried first: at 0.02 it raised bone Dice on two validation knees but lowered their re-projection PSNR,
from 20.7 to 19.5 dB, by overshooting once the views were close.)
The sampler then continues from the moved x0 (:class:`orthogen.diffusion.NestedDDIMSampler`'s
``x0_correction``). ``weight = 0`` is off.

**Geometry** (:func:`orthogen.drr.view_aligned.view_aligned_drr_images`, the preparation's own): the generated cube is view-aligned
("IAL": rows inferior, then anterior, then patient left), centred on the isocentre, its edge ``S *
pixel_spacing`` mm (S x S input views of ``pixel_spacing`` mm at the isocentre); cone beam with the
preparation's source-isocentre and source-detector distances; AP at gantry 0 degrees, lateral at 90,
each framed on the cube with S x S pixels and divided by its own maximum, as the DRRs were; then the
radiograph preprocessing the input views had (:class:`orthogen.transforms.XrayPreprocess`: crop to the
bright region, min-max to [0, 1], pad square, resize to S): the crop box is found on the detached
image by the transform itself, and the crop, scaling, padding and bilinear resize are repeated in
torch so the gradient flows. This is the rendering the re-projection PSNR of the bundle's evaluation
scores (:class:`orthogen.handlers.KneeCTMetricReport`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from orthogen.diffusion.arguments import number_in_range
from orthogen.drr.view_aligned import view_aligned_affine, view_aligned_drr_images
from orthogen.errors import InputError
from orthogen.transforms.intensity import HU_WINDOW_MAX, HU_WINDOW_MIN


def preprocessed_like_a_radiograph(image: torch.Tensor, size: int, threshold: float | str = 0.02) -> torch.Tensor:
    """(R, C) DRR in [0, 1] -> (size, size): :class:`orthogen.transforms.XrayPreprocess`'s steps, differentiable.

    The crop box comes from the transform run on the detached image; the rest is torch (the transform's
    own steps are numpy/scikit-image, which gradients cannot pass).
    """
    from orthogen.transforms import XrayPreprocess

    transform = XrayPreprocess(size=size, threshold=threshold)
    top, left, bottom, right = transform.preprocess(image.detach().cpu()[None].double().clamp(0, 1)).meta["crop_box"]
    crop = image[top:bottom, left:right]
    low, high = crop.amin(), crop.amax()
    crop = (crop - low) / (high - low).clamp(min=1e-6)
    side = max(crop.shape)
    pad_top, pad_left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square = F.pad(crop, (pad_left, side - crop.shape[1] - pad_left, pad_top, side - crop.shape[0] - pad_top),
                   value=float(transform.pad_value))
    resized = F.interpolate(square[None, None], size=(size, size), mode="bilinear", align_corners=False,
                            antialias=side > size)
    return resized[0, 0].clamp(0.0, 1.0)


class ProjectionGuidance:
    """The x0 correction of projection-guided sampling (see the module docstring).

    Args:
        weight: the fraction of the views' squared error each DDIM step removes to first order (0 turns
            guidance off; at most 1).
        hu_min, hu_max: the HU window the diffusion's [-1, 1] maps to.
        source_to_isocenter_mm, source_to_detector_mm, energy_kev: the DRR geometry and energy the
            training views were rendered with (the knee CT preparation's defaults).
        xray_threshold: the radiograph preprocessing's bright-region threshold (the preparation's).
    """

    def __init__(self, weight: float = 0.0, hu_min: float = HU_WINDOW_MIN, hu_max: float = HU_WINDOW_MAX,
                 source_to_isocenter_mm: float = 1000.0, source_to_detector_mm: float = 1500.0,
                 energy_kev: float = 60.0, xray_threshold: float | str = 0.02):
        self.weight = number_in_range(weight, "guidance_weight", 0.0, 1.0, meaning=" (0: off)")
        self.hu_min, self.hu_max = float(hu_min), float(hu_max)
        self.source_to_isocenter_mm, self.source_to_detector_mm = source_to_isocenter_mm, source_to_detector_mm
        self.energy_kev, self.xray_threshold = energy_kev, xray_threshold

    @property
    def magnification(self) -> float:
        return self.source_to_detector_mm / self.source_to_isocenter_mm

    def views_of(self, x0: torch.Tensor, pixel_spacing: float, size: int) -> torch.Tensor:
        """(2, S, S) AP and lateral DRRs in [0, 1] of one cube (r, r, r) in data units, differentiably."""
        r = x0.shape[-1]
        affine = view_aligned_affine((size * float(pixel_spacing) / r,) * 3, r)
        hu = (x0 + 1.0) / 2.0 * (self.hu_max - self.hu_min) + self.hu_min
        ap, lateral, _, _ = view_aligned_drr_images(hu, affine, self, detector_pixels=size)
        return torch.stack([preprocessed_like_a_radiograph(view, size, self.xray_threshold) for view in (ap, lateral)])

    def correction(self, views: torch.Tensor, pixel_spacing: torch.Tensor):
        """The sampler's ``x0_correction(x0 list, t) -> x0 list`` for a batch's views (B, 2, S, S) in [0, 1]
        and pixel spacings (B,) mm; it moves the highest resolution's x0 only. None when ``weight`` is 0."""
        if self.weight == 0.0:
            return None
        if views.ndim != 4 or views.shape[1] != 2 or views.shape[2] != views.shape[3]:
            raise InputError(f"expected square AP + lateral views (B, 2, S, S), got {tuple(views.shape)}", "views")
        spacing = torch.as_tensor(pixel_spacing).reshape(-1).expand(views.shape[0])

        def correct(x0: Sequence[torch.Tensor], t: torch.Tensor) -> list[torch.Tensor]:
            highest = x0[-1]
            moved = []
            for b in range(highest.shape[0]):
                with torch.enable_grad():
                    estimate = highest[b, 0].detach().requires_grad_(True)
                    rendered = self.views_of(estimate, float(spacing[b]), views.shape[-1])
                    loss = torch.mean((rendered - views[b].to(rendered.dtype)) ** 2)
                    (gradient,) = torch.autograd.grad(loss, estimate)
                step = float(loss.detach()) / float(gradient.pow(2).sum().clamp(min=1e-20))
                moved.append((estimate.detach() - self.weight * step * gradient)[None])
            return [*x0[:-1], torch.stack(moved).clamp(-1.0, 1.0)]

        return correct
