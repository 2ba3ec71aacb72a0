"""Writing a generated CT: NIfTI (HU, with spacing and affine) and a PNG montage beside it."""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
from monai.transforms import MapTransform

from orthogen.io import write_nifti
from orthogen.montage import MontageRow, write_montage


def case_name(item: Mapping) -> str:
    """A file stem for an input item: the case file's or the AP radiograph's name."""
    source = Path(str(item.get("h5") or item.get("ap") or "prediction"))
    return source.name.split(".")[0]


class SaveX2CTPredictiond(MapTransform):
    """Write ``pred`` (1, D, H, W) in HU as ``<case>_ct.nii.gz`` and ``<case>_montage.png`` in ``output_dir``.

    The NIfTI carries the affine of ``image.meta["affine"]`` (set by
    :class:`orthogen.data.biplanar_input.LoadBiplanarInputd`), so the CT has its spacing and orientation.
    The montage shows the two input radiographs beside the CT's three mid-slices; ``data_label`` names
    the data (phantom or real) in its title.
    """

    def __init__(self, output_dir: str | Path, data_label: str = "input radiographs"):
        super().__init__(keys=["pred"])
        self.output_dir = Path(output_dir)
        self.data_label = data_label

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        name = case_name(d)
        affine = np.asarray(d["image"].meta["affine"], dtype=np.float64)
        volume = d["pred"][0].detach().cpu().numpy().astype(np.float32)
        image = d["image"].detach().cpu().numpy()
        nifti = write_nifti(volume, affine, self.output_dir / f"{name}_ct.nii.gz")
        row = MontageRow(f"{name}", volume, affine, [("input AP", image[0]), ("input lateral", image[1])])
        montage = write_montage([row], self.output_dir / f"{name}_montage.png",
                                f"X2CT-GAN CT from bi-planar radiographs ({self.data_label})")
        print(f"{nifti}\n{montage}", flush=True)
        return d
