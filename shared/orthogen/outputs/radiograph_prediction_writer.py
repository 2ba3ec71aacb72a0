"""Writing generated radiographs: the mean of the K samples as a 16-bit PNG, the samples and their spread,
optionally a DICOM Secondary Capture image joining the input segmentation's study."""
from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pydicom
from monai.transforms import MapTransform

from orthogen.errors import InputError
from orthogen.io import segmentation_stem, write_dicom_radiograph, write_png
from orthogen.io.array_argument import numpy_array
from orthogen.io.atomic_write import atomic_file
from orthogen.io.dicom_ct_series import is_dicom_file_name
from orthogen.io.dicom_radiograph_write import spacing_is_at_patient
from orthogen.io.radiograph import checked_pixel_spacing

OUTPUT_FORMATS = ("png", "dicom")
logger = logging.getLogger(__name__)


def _write_npy(array: np.ndarray, path: Path) -> Path:
    with atomic_file(path) as temporary:
        with open(temporary, "wb") as stream:
            np.save(stream, array)
    return path


def _spacing(meta: Mapping) -> tuple[float, float] | None:
    """``meta["pixel_spacing_mm"]`` as (row, col) floats, or None. After collation and decollation it may be
    a list of 0-d tensors or a (2,) tensor; InputError unless two positive numbers."""
    value = meta.get("pixel_spacing_mm")
    if value is None:
        return None
    if hasattr(value, "reshape"):  # a tensor or numpy array
        value = value.reshape(-1)
    return checked_pixel_spacing([float(v) for v in value], "pixel_spacing_mm")


class SaveGeneratedRadiographd(MapTransform):
    """Write ``pred`` (K, H, W) in [0, 1], K >= 1 samples of one segmentation, to ``output_dir``.

    Files, ``<name>`` being the segmentation file's stem (``image.meta["filename_or_obj"]`` without
    .png / .npy / .nii(.gz) / .dcm):

    - ``<name>_radiograph.png``: the mean of the K samples, 16-bit;
    - when K > 1: ``<name>_samples.npy`` (K, H, W) float32, and the per-pixel standard deviation over the
      samples (population, ddof 0) as ``<name>_std.npy`` float32 and ``<name>_std.png`` (16-bit, the std
      itself, which is at most 0.5 for values in [0, 1]);
    - with ``output_format="dicom"``: ``<name>_radiograph.dcm``, the mean as a DICOM Secondary Capture image
      (:func:`orthogen.io.dicom_radiograph_write.write_dicom_radiograph`; SeriesDescription
      ``series_description``, DerivationDescription naming ``method_description``). Its spacing is the
      segmentation's ``pixel_spacing_mm`` (PixelSpacing, and ImagerPixelSpacing too when that spacing is
      at the detector), else none, with a warning. When the segmentation was a DICOM file the image joins
      its study.

    ``data_label`` names the data (phantom or real) in the log. Every file is written atomically; the paths
    are logged at INFO level.

    Raises InputError naming ``pred`` when it is not (K, H, W), or has NaN or values outside [0, 1].
    """

    def __init__(self, output_dir: str | Path, data_label: str = "input segmentation", output_format: str = "png",
                 series_description: str = "Knee radiograph diffusion synthetic radiograph (phantom-trained)",
                 method_description: str = ""):
        super().__init__(keys=["pred"])
        if output_format not in OUTPUT_FORMATS:
            raise InputError(f"expected one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}", "output_format")
        self.output_dir = Path(output_dir)
        self.data_label = data_label
        self.output_format = output_format
        self.series_description = series_description
        self.method_description = method_description

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        samples = self._checked_samples(d["pred"])
        meta = getattr(d.get("image"), "meta", {}) or {}
        source = str(meta.get("filename_or_obj", "") or "prediction")
        base = self.output_dir / segmentation_stem(source)
        dicom = self._dicom_arguments(meta, source, samples.shape[0]) if self.output_format == "dicom" else None
        mean = samples.mean(axis=0)  # float64: the mean (and std) of identical samples is exact
        written = [write_png(mean, f"{base}_radiograph.png", bit_depth=16)]
        if samples.shape[0] > 1:
            std = samples.std(axis=0)
            written.append(_write_npy(samples.astype(np.float32), Path(f"{base}_samples.npy")))
            written.append(_write_npy(std.astype(np.float32), Path(f"{base}_std.npy")))
            written.append(write_png(std, f"{base}_std.png", bit_depth=16))
        if dicom is not None:
            path = Path(f"{base}_radiograph.dcm")
            write_dicom_radiograph(mean, path, **dicom)
            written.append(path)
        for path in written:
            logger.info(f"wrote {path} ({self.data_label} {source})")
        return d

    @staticmethod
    def _checked_samples(pred) -> np.ndarray:
        """``pred`` as (K, H, W) float64 in [0, 1]; InputError naming ``pred`` otherwise."""
        samples = numpy_array(pred, "pred").astype(np.float64)
        if samples.ndim != 3:
            raise InputError(f"expected (K, H, W) generated samples, got shape {samples.shape}", "pred")
        if samples.min() < 0 or samples.max() > 1:
            raise InputError(f"values span [{samples.min():.6g}, {samples.max():.6g}]; expected values in [0, 1] "
                             "(clamp the prediction)", "pred")
        return samples

    def _dicom_arguments(self, meta: Mapping, source: str, count: int) -> dict:
        """write_dicom_radiograph's keyword arguments, worked out (and the reference read) before any file
        is written."""
        spacing = _spacing(meta)
        if spacing is None:
            logger.warning(f"{source}: no pixel spacing in the segmentation; the DICOM radiograph has no "
                           "PixelSpacing, so a viewer measures in pixels")
        method = self.method_description or "diffusion model"
        samples = f"mean of {count} samples" if count > 1 else "one sample"
        return {"pixel_spacing_mm": spacing,
                "spacing_at_detector": not spacing_is_at_patient(str(meta.get("spacing_source", ""))),
                "reference": self._reference_dataset(source), "series_description": self.series_description,
                "derivation_description": f"Synthetic radiograph generated from a segmentation by OrthoGen "
                                          f"({method}; {samples}); not an acquired image"}

    @staticmethod
    def _reference_dataset(source: str):
        """The segmentation's DICOM header when it was a DICOM file with a study, else None (a new study)."""
        file = Path(source)
        if not file.is_file() or not is_dicom_file_name(file):
            return None
        dataset = pydicom.dcmread(file, stop_before_pixels=True)
        return dataset if dataset.get("StudyInstanceUID") else None
