"""Writing a generated CT: NIfTI (HU, with spacing and affine), optionally a DICOM CT series, and a PNG montage."""
from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pydicom
from monai.transforms import MapTransform

from orthogen.errors import InputError
from orthogen.io import write_dicom_ct_series, write_nifti
from orthogen.io.dicom_ct_series import is_dicom_file_name
from orthogen.montage import MontageRow, write_montage

OUTPUT_FORMATS = ("nifti", "dicom")
logger = logging.getLogger(__name__)


#: File suffixes removed from a case file's or radiograph's name to make the output stem.
INPUT_SUFFIXES = (".h5", ".nii.gz", ".nii", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".npy")


def case_name(item: Mapping) -> str:
    """A file stem for an input item: the case file's or the AP radiograph's name without its suffix
    (``case_0007.h5`` -> ``case_0007``; a DICOM file named by its SOPInstanceUID keeps the whole UID)."""
    name = Path(str(item.get("h5") or item.get("ap") or "prediction")).name
    for suffix in INPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class SaveX2CTPredictiond(MapTransform):
    """Write ``pred`` (1, D, H, W) in HU as ``<case>_ct.nii.gz`` and ``<case>_montage.png`` in ``output_dir``.

    The NIfTI carries the affine of ``image.meta["affine"]`` (set by
    :class:`orthogen.data.biplanar_input.LoadBiplanarInputd`), so the CT has its spacing and orientation.
    With ``output_format="dicom"`` a DICOM CT series is written beside it in ``<case>_ct_dicom/``; when the
    inputs were DICOM radiographs, the series joins their study (study and patient tags copied, new
    series and instance UIDs, ``series_description``), so a PACS files it beside the radiographs.
    The montage shows the two input radiographs beside the CT's three mid-slices; its title names the
    model (``model_title``, the bundle's name) and the data (``data_label``: phantom or real). The paths written are logged at INFO level.
    """

    def __init__(self, output_dir: str | Path, data_label: str = "input radiographs", output_format: str = "nifti",
                 series_description: str = "OrthoGen synthetic CT", model_title: str = "OrthoGen"):
        super().__init__(keys=["pred"])
        if output_format not in OUTPUT_FORMATS:
            raise InputError(f"expected one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}", "output_format")
        self.output_dir = Path(output_dir)
        self.data_label = data_label
        self.output_format = output_format
        self.series_description = series_description
        self.model_title = model_title

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        name = case_name(d)
        affine = np.asarray(d["image"].meta["affine"], dtype=np.float64)
        volume = d["pred"][0].detach().cpu().numpy().astype(np.float32)
        image = d["image"].detach().cpu().numpy()
        written = [write_nifti(volume, affine, self.output_dir / f"{name}_ct.nii.gz")]
        if self.output_format == "dicom":
            folder = self.output_dir / f"{name}_ct_dicom"
            write_dicom_ct_series(volume, affine, folder, reference=self._reference_dataset(d),
                                  series_description=self.series_description)
            written.append(folder)
        row = MontageRow(f"{name}", volume, affine, [("input AP", image[0]), ("input lateral", image[1])])
        written.append(write_montage([row], self.output_dir / f"{name}_montage.png",
                                     f"{self.model_title}: CT from bi-planar radiographs ({self.data_label})"))
        for path in written:
            logger.info(f"wrote {path}")
        return d

    @staticmethod
    def _reference_dataset(d: Mapping):
        """The AP radiograph's DICOM header when the inputs were DICOM files, else None (a new study)."""
        ap = Path(str(d["image"].meta.get("filename_or_obj", "")))
        if not ap.is_file() or not is_dicom_file_name(ap):
            return None
        return pydicom.dcmread(ap, stop_before_pixels=True)
