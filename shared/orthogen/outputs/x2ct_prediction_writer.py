"""Writing a generated CT: NIfTI (HU, with spacing and affine), optionally a DICOM CT series, and a PNG montage."""
from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pydicom
from monai.transforms import MapTransform

from orthogen.errors import InputError
from orthogen.io import bone_surface_mesh, write_dicom_ct_series, write_nifti, write_stl
from orthogen.io.bone_mesh import bone_mesh_stats
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

    With ``pred_std`` (1, D, H, W) in HU (the per-voxel standard deviation of K samples,
    :class:`orthogen.transforms.SplitSampleStatisticsd`) it is written as ``<case>_ct_std.nii.gz`` on the CT's
    affine and shown as a second montage row. With ``bone_mesh_hu`` set, the CT's bone surface at that
    threshold is written as ``<case>_bone.stl`` in world RAS mm (:func:`orthogen.io.bone_surface_mesh`), sampled
    every ``max(1, edge // bone_mesh_max_samples)`` voxels (a 512^3 CT's bone surface at every voxel is
    millions of faces, hundreds of MB of STL); a CT with no voxel above the threshold gets a warning and no mesh.
    """

    def __init__(self, output_dir: str | Path, data_label: str = "input radiographs", output_format: str = "nifti",
                 series_description: str = "OrthoGen synthetic CT", model_title: str = "OrthoGen",
                 bone_mesh_hu: float | None = None, bone_mesh_max_samples: int = 256):
        super().__init__(keys=["pred"])
        if output_format not in OUTPUT_FORMATS:
            raise InputError(f"expected one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}", "output_format")
        self.output_dir = Path(output_dir)
        self.data_label = data_label
        self.output_format = output_format
        self.series_description = series_description
        self.model_title = model_title
        self.bone_mesh_hu, self.bone_mesh_max_samples = bone_mesh_hu, int(bone_mesh_max_samples)

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
        rows = [MontageRow(f"{name}", volume, affine, [("input AP", image[0]), ("input lateral", image[1])])]
        if d.get("pred_std") is not None:
            std = d["pred_std"][0].detach().cpu().numpy().astype(np.float32)
            written.append(write_nifti(std, affine, self.output_dir / f"{name}_ct_std.nii.gz"))
            rows.append(MontageRow("per-voxel std (HU)", std, affine, window_hu=(0.0, max(float(std.max()), 1.0))))
        if self.bone_mesh_hu is not None:
            written += self._bone_mesh(volume, affine, self.output_dir / f"{name}_bone.stl")
        written.append(write_montage(rows, self.output_dir / f"{name}_montage.png",
                                     f"{self.model_title}: CT from bi-planar radiographs ({self.data_label})"))
        for path in written:
            logger.info(f"wrote {path}")
        return d

    def _bone_mesh(self, volume: np.ndarray, affine: np.ndarray, path: Path) -> list[Path]:
        if not float(volume.max()) > self.bone_mesh_hu:
            logger.warning(f"no voxel above {self.bone_mesh_hu:g} HU: no bone mesh written for {path.name}")
            return []
        step = max(1, max(volume.shape) // self.bone_mesh_max_samples)
        mesh = bone_surface_mesh(volume, affine, threshold_hu=self.bone_mesh_hu, step_size=step)
        stats = bone_mesh_stats(mesh)
        logger.info(f"bone mesh at {self.bone_mesh_hu:g} HU: {stats.components} piece(s), "
                    f"{stats.volume_mm3 / 1000.0:.1f} cm^3, watertight {stats.watertight}")
        return [write_stl(mesh, path)]

    @staticmethod
    def _reference_dataset(d: Mapping):
        """The AP radiograph's DICOM header when the inputs were DICOM files, else None (a new study)."""
        ap = Path(str(d["image"].meta.get("filename_or_obj", "")))
        if not ap.is_file() or not is_dicom_file_name(ap):
            return None
        return pydicom.dcmread(ap, stop_before_pixels=True)
