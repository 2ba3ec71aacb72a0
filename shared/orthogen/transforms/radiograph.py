"""Radiograph preprocessing for X2CT-style network input: crop to the body, square, resize.

The steps, in the order the method text gives them: convert to grayscale; threshold the bright
(attenuating) part, Otsu's threshold by default; clean the mask up morphologically (opening and
closing with a disk, then filling holes); keep the largest connected region; crop the image to that
region's bounding box; min-max normalise the crop to [0, 1]; pad it to a square, centred; resize it to
(size, size) with anti-aliasing. Each step is a small function below; scikit-image does the image work.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_data_type
from scipy.ndimage import binary_fill_holes
from skimage.color import rgb2gray
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.morphology import closing, disk, opening
from skimage.transform import resize

from orthogen.errors import InputError
from orthogen.transforms.input_checks import require_channel_first, require_finite_in_range

CropBox = tuple[int, int, int, int]
"""(row_start, col_start, row_end, col_end) in input pixels, ends exclusive."""


def _to_grayscale(image: np.ndarray) -> np.ndarray:
    """(1, H, W) or RGB (3, H, W) in [0, 1] -> (H, W) luminance (ITU-R BT.709 weights, as skimage's rgb2gray)."""
    return image[0] if image.shape[0] == 1 else rgb2gray(np.moveaxis(image, 0, -1))


def _threshold_bright(gray: np.ndarray, threshold: str | float) -> np.ndarray:
    """Mask of the pixels brighter than Otsu's threshold, or than a fixed threshold in [0, 1]."""
    level = threshold_otsu(gray) if threshold == "otsu" else float(threshold)
    return gray > level


def _clean_up(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Binary opening then closing with a disk of ``radius_px`` (without one-pixel tips), then fill holes."""
    if radius_px > 0:
        footprint = disk(radius_px, strict_radius=False)
        mask = closing(opening(mask, footprint), footprint)
    return binary_fill_holes(mask)


def _largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of ``mask`` (the largest contour's inside)."""
    regions = label(mask, connectivity=2)
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    return regions == int(np.argmax(sizes))


def _bounding_box(region: np.ndarray) -> CropBox:
    """(row_start, col_start, row_end, col_end) of the region's pixels, ends exclusive."""
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _normalise_min_max(crop: np.ndarray) -> np.ndarray:
    """Map the crop's minimum to 0 and maximum to 1 (a constant crop becomes all 0)."""
    low, high = float(crop.min()), float(crop.max())
    return (crop - low) / (high - low) if high > low else np.zeros_like(crop)


def _pad_to_square(crop: np.ndarray, pad_value: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the shorter side equally on both ends (the extra pixel after) to a square; returns (square, (top, left))."""
    side = max(crop.shape)
    top = (side - crop.shape[0]) // 2
    left = (side - crop.shape[1]) // 2
    pad = ((top, side - crop.shape[0] - top), (left, side - crop.shape[1] - left))
    return np.pad(crop, pad, mode="constant", constant_values=pad_value), (top, left)


def _resize(square: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to (size, size) with Gaussian anti-aliasing when shrinking."""
    return resize(square, (size, size), order=1, mode="edge", anti_aliasing=square.shape[0] > size)


def _output_affine(affine: np.ndarray, box: CropBox, pad: tuple[int, int], scale: float) -> np.ndarray:
    """Input pixel-to-world affine composed with the map output pixel -> input pixel (crop, pad, resize)."""
    step = 1.0 / scale
    output_to_input = np.eye(affine.shape[0])
    output_to_input[0, 0] = output_to_input[1, 1] = step
    output_to_input[0, -1] = box[0] - pad[0] + 0.5 * step - 0.5
    output_to_input[1, -1] = box[1] - pad[1] + 0.5 * step - 0.5
    return affine @ output_to_input


class XrayPreprocess(Transform):
    """Crop a radiograph to the body, normalise it, pad it to a square and resize it (X2CT-style input).

    Input: (1, H, W) grayscale or (3, H, W) RGB, float in [0, 1], bone bright (numpy, tensor or
    MetaTensor). Output: a float32 MetaTensor (1, size, size) in [0, 1] whose metadata carries
    ``"crop_box"`` (row_start, col_start, row_end, col_end in input pixels, ends exclusive), ``"scale"``
    (output pixels per input pixel), an affine composed with the crop, pad and resize, and
    ``"pixel_spacing_mm"`` (row, col) divided by ``scale`` if the input's metadata had it.

    Args:
        size: output side in pixels.
        threshold: ``"otsu"`` or a fixed threshold in [0, 1] on the grayscale image.
        closing_radius_px: radius in pixels of the disk for the opening and closing; bright specks
            and wires thinner than 2 * radius + 1 pixels are removed. The disk is skimage's
            ``disk(radius, strict_radius=False)``, whose ends are 3 pixels wide rather than a single
            pixel, so a one-pixel stub on a straight edge cannot survive the opening. 0 skips both.
        pad_value: value in [0, 1] of the padding that squares the crop.

    Raises:
        InputError: bad arguments, a wrong shape or value range, or no bright region left to crop to.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        size: int = 128,
        threshold: str | float = "otsu",
        closing_radius_px: int = 3,
        pad_value: float = 0.0,
    ):
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise InputError(f"expected a positive integer, got {size!r}", "size")
        if threshold != "otsu" and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise InputError(f"expected 'otsu' or a number in [0, 1], got {threshold!r}", "threshold")
        if not isinstance(closing_radius_px, (int, np.integer)) or closing_radius_px < 0:
            raise InputError(f"expected an integer >= 0, got {closing_radius_px!r}", "closing_radius_px")
        if not isinstance(pad_value, (int, float)) or not 0.0 <= pad_value <= 1.0:
            raise InputError(f"expected a value in [0, 1], got {pad_value!r}", "pad_value")
        self.size = int(size)
        self.threshold = threshold
        self.closing_radius_px = int(closing_radius_px)
        self.pad_value = float(pad_value)

    def preprocess(self, img: NdarrayOrTensor, source: str = "img") -> MetaTensor:
        """Run the steps on ``img``, naming it ``source`` in errors; the result is as for ``__call__``."""
        require_channel_first(img, (2,), source, channels=(1, 3))
        image = convert_data_type(img, np.ndarray, dtype=np.float64)[0]
        require_finite_in_range(image, 0.0, 1.0, source)
        gray = _to_grayscale(image)
        bright = _clean_up(_threshold_bright(gray, self.threshold), self.closing_radius_px)
        if not bright.any():
            raise InputError(
                f"no bright region is left after thresholding ({self.threshold}) and clean-up "
                f"(disk radius {self.closing_radius_px} px); the image may be blank",
                source,
            )
        box = _bounding_box(_largest_region(bright))
        crop = _normalise_min_max(gray[box[0] : box[2], box[1] : box[3]])
        square, pad = _pad_to_square(crop, self.pad_value)
        resized = np.clip(_resize(square, self.size), 0.0, 1.0).astype(np.float32)
        scale = self.size / float(square.shape[0])
        return MetaTensor(torch.from_numpy(resized[None]), meta=self._output_meta(img, box, pad, scale))

    @staticmethod
    def _output_meta(img: NdarrayOrTensor, box: CropBox, pad: tuple[int, int], scale: float) -> dict:
        """The input's metadata with the crop box, scale, composed affine and resized pixel spacing."""
        meta, affine = {}, np.eye(4)
        if isinstance(img, MetaTensor):
            meta = dict(img.meta)
            affine = convert_data_type(img.affine, np.ndarray, dtype=np.float64)[0]
        meta["affine"] = torch.as_tensor(_output_affine(affine, box, pad, scale))
        meta["crop_box"] = box
        meta["scale"] = scale
        if "pixel_spacing_mm" in meta:
            spacing = convert_data_type(meta["pixel_spacing_mm"], np.ndarray, dtype=np.float64, wrap_sequence=True)[0]
            meta["pixel_spacing_mm"] = tuple(float(s) for s in spacing / scale)
        return meta

    def __call__(self, img: NdarrayOrTensor) -> MetaTensor:
        """(1 or 3, H, W) in [0, 1] -> MetaTensor (1, size, size) in [0, 1], see the class docstring."""
        return self.preprocess(img)


class XrayPreprocessd(MapTransform):
    """Dictionary form of :class:`XrayPreprocess`.

    Each key's image is replaced by the (1, size, size) result; ``d[f"{key}_crop_box"]`` gets the crop
    box (row_start, col_start, row_end, col_end in input pixels) and ``d[f"{key}_scale"]`` the scale
    (output pixels per input pixel), besides the MetaTensor metadata.
    """

    backend = XrayPreprocess.backend

    def __init__(
        self,
        keys: KeysCollection,
        size: int = 128,
        threshold: str | float = "otsu",
        closing_radius_px: int = 3,
        pad_value: float = 0.0,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.preprocessor = XrayPreprocess(
            size=size, threshold=threshold, closing_radius_px=closing_radius_px, pad_value=pad_value
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            out = self.preprocessor.preprocess(d[key], source=str(key))
            d[key] = out
            d[f"{key}_crop_box"] = out.meta["crop_box"]
            d[f"{key}_scale"] = out.meta["scale"]
        return d
