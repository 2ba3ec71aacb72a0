"""The ``orthogen`` command line (python-fire): ``orthogen phantom|drr|demo|prepare ...``.

Each command is a thin wrapper over the library; run ``orthogen COMMAND --help`` for its flags.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import fire
import torch

from orthogen.errors import InputError, OrthoGenError


def _triple(value: int | float | str | Sequence, name: str, kind=float) -> tuple:
    """'128' / 128 / '128,128,96' / (128, 128, 96) -> a 3-tuple of ``kind``."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    try:
        values = tuple(kind(v) for v in items)
    except (TypeError, ValueError):
        raise InputError(f"expected one or three numbers, got {value!r}", name) from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise InputError(f"expected one or three numbers, got {len(values)}", name)
    return values


class PhantomCommands:
    """Procedural phantom CTs written in the CTSpine1K layout: OUT/data/<case>.nii.gz + OUT/label/<case>_seg.nii.gz."""

    def knee(self, seed: int = 0, shape="128", spacing="1.0", out: str = "output/phantoms", count: int = 1):
        """Knee phantoms (femur 1, tibia 2, fibula 3, patella 4) for seeds seed .. seed+count-1."""
        from orthogen.phantoms import KneePhantom

        return self._write(KneePhantom, "knee", seed, shape, spacing, out, count)

    def spine(self, seed: int = 0, shape="128", spacing="1.5", out: str = "output/phantoms", count: int = 1):
        """Lumbar spine phantoms (L1..L5 = labels 20..24) for seeds seed .. seed+count-1."""
        from orthogen.phantoms import SpinePhantom

        return self._write(SpinePhantom, "spine", seed, shape, spacing, out, count)

    @staticmethod
    def _write(model, kind: str, seed: int, shape, spacing, out: str, count: int) -> None:
        from orthogen.data.case_layout import write_case

        shape, spacing = _triple(shape, "shape", int), _triple(spacing, "spacing")
        for s in range(int(seed), int(seed) + int(count)):
            phantom = model.from_seed(s).render(shape=shape, spacing=spacing)
            case = write_case(phantom.volume_hu, phantom.labels, phantom.affine, out, f"{kind}_{s:04d}")
            print(case.image)
            print(case.mask)


def drr(ct: str, views: str = "ap,lateral", size: int = 256, out: str = "output/drr", sid: float = 1000.0,
        sdd: float = 1500.0, parallel: bool = False, energy_kev: float = 60.0, labels: str | None = None,
        framing: str = "orbit") -> None:
    """Render DRRs of a CT (NIfTI, NRRD or DICOM folder): PNG + NPY + JSON (pixel spacing) per view.

    Args:
        views: e.g. "ap,lateral", "0,45,90" (gantry degrees) or "orbit:60".
        size: detector pixels per side.
        sid, sdd: source-to-isocenter and source-to-detector distance, mm (cone beam).
        parallel: parallel beam instead of cone beam.
        labels: a label map to project as well (bone-only path-length images, "<stem>_bone_<view>").
        framing: "orbit" (volume on the detector at any angle) or "isocenter" (tight on the volume).
    """
    from orthogen.drr import DRR, fit_detector, project_labels, render_drr
    from orthogen.drr.files import save_views
    from orthogen.io import read_ct

    volume = read_ct(ct)
    affine = volume.affine.numpy()
    geometry = fit_detector(volume.shape, affine, int(size), source_to_isocenter_mm=sid,
                            source_to_detector_mm=sdd, parallel=parallel, framing=framing)
    result = render_drr(volume.as_tensor(), affine, geometry, views, energy_kev=energy_kev)
    stem = Path(ct).name.split(".")[0]
    written = save_views(result, geometry, out, stem)
    if labels is not None:
        path_mm = project_labels(read_ct(labels).as_tensor().round().to(torch.int64), affine, geometry,
                                 list(result.angles_deg)).sum(dim=1)
        norm = path_mm.amax(dim=(1, 2)).clamp(min=1e-6)
        bone = DRR(path_mm / norm[:, None, None], path_mm, result.angles_deg, result.pixel_spacing_mm, norm)
        written += save_views(bone, geometry, out, f"{stem}_bone")
    for path in written:
        print(path)


class PrepareCommands:
    """Dataset preparation into the on-disk layouts the bundles read."""

    def x2ct(self, source: str, out: str, size: int = 128, crop: str = "vertebra", margin_mm: float = 4.0,
             test_fraction: float = 0.2, seed: int = 0) -> None:
        """CTs + vertebra masks (CTSpine1K layout, real or phantom) -> X2CT case files + datalist.json.

        Args:
            source: folder with data/<case>.nii.gz and label/<case>_seg.nii.gz (any depth).
            out: output folder (one <case>.h5 per case, train.txt, test.txt, datalist.json).
            size: cube edge in voxels and radiograph side in pixels.
            crop: "vertebra" (a case per vertebra) or "spine" (a case per CT).
        """
        from orthogen.data.x2ct_prepare import X2CTPreparation, prepare_x2ct_dataset

        prep = X2CTPreparation(size=int(size), crop=crop, margin_mm=float(margin_mm),
                               test_fraction=float(test_fraction), seed=int(seed))
        datalist = prepare_x2ct_dataset(source, out, prep)
        print(f"{out}: {len(datalist['training'])} training, {len(datalist['validation'])} validation, "
              f"{len(datalist['test'])} test cases; {Path(out) / 'datalist.json'}")


def demo(out: str = "output/demo", seed: int = 0, bundle_dir: str = "bundles/spine_x2ct_gan") -> None:
    """Phantom knee and spine -> AP/lateral DRRs, and X2CT-GAN on a phantom vertebra -> files + one montage."""
    from orthogen.demo import run_demo

    for path in run_demo(out, seed=seed, bundle_dir=bundle_dir):
        print(path)


def main() -> None:
    try:
        fire.Fire({"phantom": PhantomCommands, "drr": drr, "prepare": PrepareCommands, "demo": demo}, name="orthogen")
    except OrthoGenError as error:
        raise SystemExit(f"orthogen: error: {error}") from None


if __name__ == "__main__":
    main()
