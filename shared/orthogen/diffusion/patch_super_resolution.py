"""Patch diffusion super-resolution of a CT cube: x4 per pass (32^3 -> 128^3 -> 512^3), seamless, memory bounded.

The seed (Khosravi et al.) supersamples its 128^3 CTs to 512^3 with a patch-based diffusion model; this
is ours. One pass turns a low-resolution cube ``low`` (B, 1, r, r, r) into (B, 1, R, R, R), R = factor r:

- **Condition.** ``low`` is upsampled trilinearly to R^3 (``up``). The network
  (:class:`orthogen.networks.PatchSuperResolutionUNet`) sees, per patch, ``up`` in data units [-1, 1] and
  the patch's position: three coordinate channels in [-0.5, 0.5] along the volume's axes (MONAI's
  ``AddCoordinateChannels`` convention, :func:`volume_coordinates`).
- **Residual diffusion.** The diffusion runs on ``residual_scale * (high - up)`` (data units), the
  detail the upsampling lost; the result is ``up + residual / residual_scale``. The training pairs are made
  as the cascade makes its low resolutions: ``low`` = the high cube average-pooled by ``factor``
  (:func:`orthogen.diffusion.downsample_pyramid`, :class:`orthogen.transforms.SuperResolutionPaird`).
- **Schedule and sampler.** The cosine log-SNR schedule without a resolution shift
  (:class:`ShiftedCosineSchedule` with ``shift_power=0``: patches of any size are noised alike) and
  seeded DDIM (:class:`NestedDDIMSampler` on the one resolution R; ``steps`` knob).
- **Seamless patches.** Each DDIM step denoises the *whole* volume: MONAI's ``sliding_window_inference``
  runs the network on overlapping ``patch_size``^3 windows of the current noisy volume and blends their
  predictions with Gaussian weights (``blend_mode``), then one DDIM step updates the whole volume. All
  windows share one noisy volume and one time, so overlaps agree up to the network's own disagreement,
  which the blending averages out: there is no per-patch sample to stitch (the seam of independent
  patch samples). The network's memory is bounded by the patch (and ``sw_batch_size``); the volume-sized
  arrays are the noisy volume, ``up``, the blended prediction and its weight map (a few x R^3 float32:
  ~3 GB at 512^3).
- **Passes.** ``passes`` x4 passes reach 4^passes times the input edge (the shipped 32^3 cascade: two
  passes to 512^3); each pass starts from the previous one's output.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import torch
from monai.inferers import sliding_window_inference
from tqdm import tqdm

from orthogen.diffusion.nested_ddim_sampler import NestedDDIMSampler
from orthogen.diffusion.nested_diffusion import ShiftedCosineSchedule
from orthogen.errors import InputError
from orthogen.transforms.super_resolution_pair import SUPER_RESOLUTION_FACTOR, upsample_volume

logger = logging.getLogger(__name__)


def super_resolution_passes(resolution: int, output_resolution: int | None) -> int:
    """The x4 passes from a ``resolution``^3 CT to ``output_resolution``^3 (None: 0).

    Raises:
        InputError: ``output_resolution`` is not ``resolution`` times a power of 4 (at most 1024).
    """
    if output_resolution is None:
        return 0
    reachable = []
    edge = int(resolution)
    while edge <= 1024:
        reachable.append(edge)
        edge *= SUPER_RESOLUTION_FACTOR
    if isinstance(output_resolution, bool) or output_resolution not in reachable:
        raise InputError(f"expected one of {', '.join(map(str, reachable))} (the {resolution}^3 cascade times "
                         f"{SUPER_RESOLUTION_FACTOR}^k), got {output_resolution!r}", "resolution")
    return reachable.index(output_resolution)


def unshifted_schedule() -> ShiftedCosineSchedule:
    """The super-resolution's schedule: cosine log-SNR in [-15, 15], the same at every patch size."""
    return ShiftedCosineSchedule(base_resolution=1, shift_power=0.0)


def volume_coordinates(volume_shape: Sequence[int], window: Sequence[slice], device=None,
                       dtype=torch.float32) -> torch.Tensor:
    """(3, *window shape) coordinates in [-0.5, 0.5] of the voxels ``window`` of a volume of ``volume_shape``.

    The values of MONAI's ``AddCoordinateChannels`` (``linspace(-0.5, 0.5, n)`` per axis) cut to the window,
    so a patch at inference carries the coordinates its training crop carried.
    """
    axes = [torch.linspace(-0.5, 0.5, int(n), device=device, dtype=dtype)[s] for n, s in zip(volume_shape, window)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def condition_channels(upsampled: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
    """The network's condition (B, 4, ...): the upsampled patch in [0, 1] mapped to [-1, 1], then the coordinates."""
    return torch.cat([upsampled * 2.0 - 1.0, coordinates], dim=1)


PatchFunction = Callable[[torch.Tensor, Sequence[Sequence[slice]]], torch.Tensor]


def blend_patches(volume: torch.Tensor, patch_fn: PatchFunction, patch_size: int, overlap: float = 0.25,
                  blend_mode: str = "gaussian", sw_batch_size: int = 1, progress: bool = False) -> torch.Tensor:
    """``patch_fn`` over overlapping ``patch_size``^3 windows of ``volume`` (B, C, *spatial), blended.

    MONAI's ``sliding_window_inference`` with ``with_coord``: ``patch_fn(patches (n, C, p, p, p), windows)``
    gets each window's index slices (``[batch, channel, x, y, z]`` slices, as MONAI gives them) and returns
    (n, C', p, p, p); the windows' outputs are blended with ``blend_mode`` weights ("gaussian" or
    "constant") normalised by their sum, so a constant field comes back unchanged.
    """
    if patch_size < 1 or any(patch_size > n for n in volume.shape[2:]):
        raise InputError(f"expected a patch edge from 1 to the volume's {tuple(volume.shape[2:])}, got {patch_size}",
                         "patch_size")
    if not 0.0 <= overlap < 1.0:
        raise InputError(f"expected an overlap in [0, 1), got {overlap}", "overlap")
    storage = volume.untyped_storage().data_ptr()

    def own_output(patches: torch.Tensor, windows) -> torch.Tensor:
        out = patch_fn(patches, windows)
        # MONAI weights the output in place; a window that is a view of the volume would change it
        return out.clone() if out.untyped_storage().data_ptr() == storage else out

    return sliding_window_inference(volume, roi_size=patch_size, sw_batch_size=sw_batch_size, predictor=own_output,
                                    overlap=overlap, mode=blend_mode, with_coord=True, progress=progress)


class PatchSuperResolution:
    """x4 patch diffusion super-resolution passes of a CT cube in [0, 1] (see the module docstring).

    Args:
        network: ``network(x (n, 1, p, p, p), timesteps (n,), condition (n, 4, p, p, p))`` ->
            prediction (:class:`orthogen.networks.PatchSuperResolutionUNet`).
        passes: x4 passes per call (0: none).
        patch_size: window edge at inference (a multiple of the network's; larger = fewer windows).
        overlap: windows' overlap fraction; blend_mode: "gaussian" or "constant".
        steps: DDIM steps per pass (network calls per window per pass).
        seed: seed of each pass's start noise (pass k uses ``seed + k``).
        residual_scale: the residual's scale in the diffusion (as trained).
        prediction_type: "v" or "epsilon" (as trained).
        sw_batch_size: windows per network call.

    Attributes:
        nfe: network calls (windows x steps, all passes) of the last call.
    """

    def __init__(self, network: torch.nn.Module, passes: int = 1, patch_size: int = 64, overlap: float = 0.25,
                 blend_mode: str = "gaussian", steps: int = 10, seed: int = 0, residual_scale: float = 4.0,
                 prediction_type: str = "v", sw_batch_size: int = 1):
        for name, value, low in (("passes", passes, 0), ("patch_size", patch_size, 1), ("steps", steps, 1),
                                 ("sw_batch_size", sw_batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"expected a whole number >= {low}, got {value!r}", name)
        if blend_mode not in ("gaussian", "constant"):
            raise InputError(f"expected 'gaussian' or 'constant', got {blend_mode!r}", "blend_mode")
        if not (math.isfinite(residual_scale) and residual_scale > 0):
            raise InputError(f"expected a number > 0, got {residual_scale!r}", "residual_scale")
        self.network, self.passes, self.patch_size, self.overlap = network, passes, patch_size, float(overlap)
        self.blend_mode, self.steps, self.seed = blend_mode, steps, int(seed)
        self.residual_scale, self.sw_batch_size = float(residual_scale), sw_batch_size
        self.schedule = unshifted_schedule()
        self.sampler = NestedDDIMSampler(self.schedule, num_steps=steps, prediction_type=prediction_type,
                                         x0_range=(-2.0 * self.residual_scale, 2.0 * self.residual_scale))
        self.nfe = 0

    def describe(self) -> str:
        return (f"patch diffusion SR x{SUPER_RESOLUTION_FACTOR ** self.passes} ({self.passes} pass(es), "
                f"{self.patch_size}^3 patches, {self.steps} DDIM steps)")

    @torch.no_grad()
    def __call__(self, low: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """(B, 1, r, r, r) CT in [0, 1] -> (B, 1, 4^passes r, ...) in [0, 1]; ``seed`` replaces the object's."""
        if not isinstance(low, torch.Tensor) or low.ndim != 5 or low.shape[1] != 1 or len(set(low.shape[2:])) != 1:
            got = tuple(low.shape) if isinstance(low, torch.Tensor) else type(low).__name__
            raise InputError(f"expected a CT cube (B, 1, r, r, r) in [0, 1], got {got}", "low")
        self.nfe = 0
        volume, seed = low.float(), self.seed if seed is None else int(seed)
        for k in range(self.passes):
            volume = self._one_pass(volume, seed + k)
        return volume

    def _one_pass(self, low: torch.Tensor, seed: int) -> torch.Tensor:
        start, calls_before = time.perf_counter(), self.nfe
        up = upsample_volume(low).clamp(0.0, 1.0)
        size = up.shape[-1]
        patch = min(self.patch_size, size)
        network, bar = self.network, tqdm(total=self.steps, desc=f"patch SR to {size}^3", disable=None, leave=False)

        def denoise(x_t: Sequence[torch.Tensor], t: torch.Tensor) -> list[torch.Tensor]:
            def window_predictions(patches: torch.Tensor, windows) -> torch.Tensor:
                coordinates = torch.stack([volume_coordinates(up.shape[2:], w[2:], up.device) for w in windows])
                upsampled = torch.cat([up[tuple(w)] for w in windows])
                times = torch.stack([t[w[0]].reshape(()) for w in windows]) * 1000.0
                self.nfe += 1
                return network(patches, times, condition_channels(upsampled, coordinates))

            prediction = blend_patches(x_t[0], window_predictions, patch, self.overlap, self.blend_mode,
                                       self.sw_batch_size)
            bar.update()
            return [prediction]

        try:
            residual = self.sampler(denoise, [size], batch_size=low.shape[0], seed=seed, device=low.device)[0]
        finally:
            bar.close()
        high = (up + residual / (2.0 * self.residual_scale)).clamp(0.0, 1.0)
        logger.info(f"stage patch SR {low.shape[-1]}^3 -> {size}^3: {self.steps} DDIM steps, {patch}^3 windows, "
                    f"{self.nfe - calls_before} network calls, {time.perf_counter() - start:.1f} s")
        return high

