"""Inputs users really have, as a table: each row is a bad input and the one line it must produce.

Every row runs a real command in a subprocess (the installed ``orthogen`` entry point, or later
``python -m monai.bundle run ...``) with an output folder of its own, and the shared check asserts:

* the exit status is non-zero;
* stderr holds no Python traceback;
* the last line of stderr matches the row's expected message (a regex, searched);
* nothing was left in the output folder.

Adding a row: append a ``BadInput`` to ``CLI_ROWS`` (or ``BUNDLE_ROWS``, which run the bundles'
documented ``python -m monai.bundle run inference ...`` from the bundle's folder). ``command`` gets the
``Inputs`` (the small bad files below, made once per session) and the row's output folder, and returns
the argv; ``expected`` is a regex for the last stderr line — ``cli_error(fragment)`` for the
``orthogen`` command's ``orthogen: error: ...`` line. A new kind of bad file goes into ``make_inputs``.

The rows' subprocesses run a few at a time (``PARALLEL_RUNS``) as soon as the first row is reached.
A row whose input is refused before any file is read answers in ~0.2 s; a row that reads a file pays
``import orthogen.io`` (torch + MONAI, ~7 s of CPU here). So that the file stays well under a minute on
two cores, the file-reading rows whose check is also tested in-process elsewhere are ``slow=True``
(``make test-slow``): the label-map checks (tests/test_cli.py), the source-inside-the-volume check
(the library rows below), the PNG and empty-folder refusals (tests/test_io.py) and ``--crop``, and the knee
CT bundle's rows whose check is a spine_x2ct_gan row's (one loader, ``LoadBiplanarInputd``, serves both).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: How many rows' subprocesses run at once (the file-reading ones are CPU-bound imports).
PARALLEL_RUNS = max(2, min(4, os.cpu_count() or 2))
ROW_TIMEOUT_S = 300


# ---------------------------------------------------------------- the bad files

@dataclass(frozen=True)
class Inputs:
    """Paths of the session's input files: one good 16^3 CT with its labels, and the bad ones."""

    dir: Path

    def __getattr__(self, name: str) -> Path:  # inputs.ct, inputs.truncated, ... (see make_inputs)
        if name not in _FILES:
            raise AttributeError(name)
        return self.dir / _FILES[name]


_FILES = {
    "ct": "ct.nii.gz",  # a good 16^3 CT at 2 mm, HU
    "labels": "ct_seg.nii.gz",  # its good label map
    "missing": "missing.nii.gz",
    "empty": "empty.nii.gz",
    "truncated": "truncated.nii.gz",  # the first half of a good .nii.gz
    "text": "notes.nii.gz",  # a text file named .nii.gz
    "rgb": "rgb.nii.gz",  # an RGB24 NIfTI volume
    "photo": "photo.png",  # an RGB PNG passed as the CT
    "frames": "frames.nii.gz",  # a 4D (multi-frame) NIfTI, 4 frames of 16^3
    "nan": "nan.nii.gz",  # a CT with 5 NaN voxels
    "flat": "flat.nii.gz",  # a 2D NIfTI (16 x 16) where a 3D CT is needed
    "empty_folder": "empty_folder",  # a folder with no DICOM files, as a DICOM series
    "labels_other_grid": "other_grid_seg.nii.gz",  # labels 16 x 16 x 8: not the CT's grid
    # not a CT, or too thin for a DRR (issue 26)
    "one_slice_ct": "one_slice_ct",  # a DICOM folder of one CT slice (SliceThickness 5, SpacingBetweenSlices 20)
    "mr_slice_folder": "mr_slice",  # a DICOM folder of one MR slice (MR Image Storage, all of a CT's geometry)
    "mr_image": "mr_slice/mr.dcm",  # the same MR slice, given as a radiograph
    "cr_film_folder": "cr_film",  # a CR film (no geometry tags) in a folder given as a CT series
    "mr_volume": "mr.nii.gz",  # an MR volume in arbitrary units 0..4000, no negative values
    "labels_zero": "zero_seg.nii.gz",  # labels with no bone
    "a_file": "a_file.txt",  # a file where an output folder is wanted
    # radiographs for the X-ray -> CT bundles (48 x 48 DX files of a bright disk)
    "dx_ap": "ap.dcm",  # a good AP DX, PixelSpacing 2 mm
    "dx_lateral": "lateral.dcm",  # a good lateral DX
    "dx_no_spacing": "no_spacing.dcm",  # a DX without PixelSpacing / ImagerPixelSpacing
    "dx_zero_spacing": "zero_spacing.dcm",  # PixelSpacing 0\\0
    "dx_rgb": "rgb.dcm",  # an RGB secondary capture
    "dx_frames": "frames.dcm",  # a 3-frame DX
    "dx_text": "notes.dcm",  # a text file named .dcm
    "dx_truncated": "truncated.dcm",  # the first half of a good DX
    "dx_missing": "missing_ap.dcm",
    "dx_chest": "chest.dcm",  # a chest-sized film: 48 px at PixelSpacing 8 mm = 384 mm, a spine model's crop is ~90 mm
    "xray_png": "ap.png",  # a PNG radiograph (no spacing in the file)
    "xray_png_40x48": "lateral_40x48.png",  # the same PNG cut to 40 x 48: not the AP view's detector size
    "weights_other": "other_weights.pt",  # a state dict of another network
    "weights_text": "weights.pt.txt",  # a text file as the weights
    # segmentations for knee_radiograph_diffusion (levels 0 / 128 / 255 = 0 / 0.5 / 1)
    "seg": "knee_seg.png",  # a good 64 x 64 segmentation
    "seg_small_off_level": "small_off_level_seg.png",  # 48 x 48 (resampled to the model's 64 x 64) with 77/255
    "seg_off_level": "off_level_seg.png",  # 64 x 64 with a value of 77/255
    "seg_text": "notes_seg.png",  # a text file named .png
}


def make_inputs(folder: Path) -> Inputs:
    """Write every input of ``_FILES`` into ``folder`` (all tiny: 16^3 voxels)."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -15.0
    ct = np.full((16, 16, 16), -1000.0, np.float32)
    ct[4:12, 4:12, 2:14] = 40.0
    ct[6:10, 6:10, 2:14] = 700.0
    labels = np.zeros(ct.shape, np.uint8)
    labels[6:10, 6:10, 2:14] = 1
    inputs = Inputs(folder)

    def nifti(array: np.ndarray, name: str) -> None:
        nib.save(nib.Nifti1Image(array, affine), getattr(inputs, name))

    nifti(ct, "ct")
    nifti(labels, "labels")
    inputs.empty.write_bytes(b"")
    whole = inputs.ct.read_bytes()
    inputs.truncated.write_bytes(whole[: len(whole) // 2])
    inputs.text.write_text("CT of the left knee, see the attached report.\n" * 20)
    nifti(np.zeros(ct.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]), "rgb")
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8), "RGB").save(inputs.photo)
    nifti(np.stack([ct] * 4, axis=-1), "frames")
    with_nan = ct.copy()
    with_nan[0, 0, :5] = np.nan
    nifti(with_nan, "nan")
    nifti(ct[:, :, 8], "flat")
    inputs.empty_folder.mkdir()
    nifti(labels[:, :, :8], "labels_other_grid")
    nifti(np.zeros_like(labels), "labels_zero")
    _make_foreign_ct_inputs(inputs, ct)
    inputs.a_file.write_text("not a folder\n")
    _make_radiograph_inputs(inputs)
    return inputs


def _make_foreign_ct_inputs(inputs: Inputs, ct: np.ndarray) -> None:
    import pydicom

    from dicom_builders import write_dx
    from orthogen.io import write_dicom_ct_series

    write_dicom_ct_series(ct[:, :, 8:9], np.diag([2.0, 2.0, 2.0, 1.0]), inputs.one_slice_ct)
    (slice_file,) = inputs.one_slice_ct.iterdir()
    ds = pydicom.dcmread(slice_file)
    ds.SliceThickness, ds.SpacingBetweenSlices = 5.0, 20.0
    ds.save_as(slice_file)
    inputs.mr_slice_folder.mkdir()
    write_dx(inputs.mr_image, np.full((48, 48), 400, np.uint16), modality="MR", sop_class="1.2.840.10008.5.1.4.1.1.4",
             pixel_spacing=(2.0, 2.0), ImageOrientationPatient=[1, 0, 0, 0, 1, 0], ImagePositionPatient=[0, 0, 0],
             SliceThickness=5.0)
    inputs.cr_film_folder.mkdir()
    write_dx(inputs.cr_film_folder / "film.dcm", np.zeros((48, 48), np.uint16), modality="CR",
             sop_class="1.2.840.10008.5.1.4.1.1.1", pixel_spacing=(0.2, 0.2))
    mr = np.zeros(ct.shape, np.float32)
    mr[1:15, 1:15] = np.random.default_rng(0).uniform(300.0, 4000.0, (14, 14, ct.shape[2]))
    nib.save(nib.Nifti1Image(mr, np.diag([2.0, 2.0, 2.0, 1.0])), inputs.mr_volume)


def _make_radiograph_inputs(inputs: Inputs) -> None:
    import torch
    from pydicom.uid import ImplicitVRLittleEndian, generate_uid

    from dicom_builders import write_dx

    disk = np.zeros((48, 48))
    disk[np.hypot(*np.mgrid[-24:24, -24:24]) < 18] = 3000.0
    grey = disk.astype("<u2")  # 12 bits stored; each file an Implicit VR DX of its own study, patient "P"
    dx = {"transfer_syntax": ImplicitVRLittleEndian, "PatientID": "P"}
    for path, pixels, spacing in ((inputs.dx_ap, grey, (2.0, 2.0)), (inputs.dx_lateral, grey, (2.0, 2.0)),
                                  (inputs.dx_no_spacing, grey, None), (inputs.dx_zero_spacing, grey, (0.0, 0.0)),
                                  (inputs.dx_chest, grey, (8.0, 8.0)),
                                  (inputs.dx_frames, np.stack([grey] * 3), (2.0, 2.0))):
        write_dx(path, pixels, bits_stored=12, pixel_spacing=spacing, study_uid=generate_uid(), **dx)
    write_dx(inputs.dx_rgb, np.repeat(disk[..., None] / 16, 3, axis=-1).astype("u1"), photometric="RGB",
             pixel_spacing=(2.0, 2.0), study_uid=generate_uid(), **dx)
    inputs.dx_text.write_text("AP view of the lumbar spine, see report.\n" * 10)
    whole = inputs.dx_ap.read_bytes()
    inputs.dx_truncated.write_bytes(whole[: len(whole) // 2])
    picture = (disk / 3000 * 255).astype(np.uint8)
    Image.fromarray(picture).save(inputs.xray_png)
    Image.fromarray(picture[:40]).save(inputs.xray_png_40x48)
    torch.save({"conv.weight": torch.zeros(4, 2, 3, 3)}, inputs.weights_other)
    inputs.weights_text.write_text("not weights\n")
    segmentation = np.zeros((64, 64), np.uint8)
    segmentation[8:56, 16:48] = 128
    segmentation[20:44, 24:40] = 255
    Image.fromarray(segmentation).save(inputs.seg)
    off_level = segmentation.copy()
    off_level[30:34, 30:34] = 77
    Image.fromarray(off_level).save(inputs.seg_off_level)
    Image.fromarray(off_level[:48, :48]).save(inputs.seg_small_off_level)
    inputs.seg_text.write_text("segmentation of the left knee\n" * 10)


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class BadInput:
    """One row: ``command(inputs, out_dir) -> argv`` must fail with a last stderr line matching ``expected``."""

    id: str
    command: Callable[[Inputs, Path], list[str]]
    expected: str
    cwd: Callable[[Inputs], Path] | None = None  # default: the row's own empty working folder
    env: dict[str, str] = field(default_factory=dict)
    slow: bool = False  # runs under `make test-slow` only (its check is also tested in-process elsewhere)


def orthogen(*args) -> list[str]:
    """argv of the installed ``orthogen`` entry point (``python -m orthogen.cli`` when not installed)."""
    script = Path(sys.executable).with_name("orthogen")
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "orthogen.cli"]
    return prefix + [str(a) for a in args]


def cli_error(fragment: str) -> str:
    """The ``orthogen`` command's one error line, containing ``fragment`` (a regex)."""
    return rf"^orthogen: error: .*{fragment}"


@dataclass(frozen=True)
class File:
    """An argument that is one of the session's input files (``File("labels_zero")``)."""

    name: str


def _drr(*args) -> Callable[[Inputs, Path], list[str]]:
    """``orthogen drr <good CT> ARGS --out OUT``; a ``File(name)`` arg becomes that input's path."""
    return lambda f, out: orthogen("drr", f.ct, *(getattr(f, a.name) if isinstance(a, File) else a for a in args),
                                   "--out", out)


def _drr_of(name: str, *args) -> Callable[[Inputs, Path], list[str]]:
    """``orthogen drr <the bad input NAME> ARGS --out OUT``."""
    return lambda f, out: orthogen("drr", getattr(f, name), *args, "--out", out)


def _phantom(**flags: str) -> Callable[[Inputs, Path], list[str]]:
    """``orthogen phantom spine`` at 16^3 / 8 mm with ``flags`` (``seed="-1"`` -> ``--seed -1``)."""
    flags = {"shape": "16", "spacing": "8", **flags}
    return lambda f, out: orthogen("phantom", "spine", *(x for k, v in flags.items() for x in (f"--{k}", v)),
                                   "--out", out)


CLI_ROWS = [
    # -- the CT file itself
    BadInput("ct-missing", _drr_of("missing"), cli_error(r"missing\.nii\.gz: file not found")),
    BadInput("ct-empty-file", _drr_of("empty"), cli_error(r"empty\.nii\.gz: file is empty")),
    BadInput("ct-truncated-nifti", _drr_of("truncated"), cli_error(r"truncated\.nii\.gz: not a readable NIfTI.*truncated")),
    BadInput("ct-text-as-nifti", _drr_of("text"), cli_error(r"notes\.nii\.gz: not a readable NIfTI")),
    # orthogen.io.read_ct raises a bare TypeError on RGB24 NIfTI; the CLI still names the file in one line
    BadInput("ct-rgb-nifti", _drr_of("rgb"), cli_error(r"rgb\.nii\.gz: .*(RGB|colou?r|could not be read as a CT)")),
    BadInput("ct-rgb-png", _drr_of("photo"), cli_error(r"photo\.png: unknown CT file type '\.png'"), slow=True),
    BadInput("ct-multi-frame-4d", _drr_of("frames"), cli_error(r"frames\.nii\.gz: expected a 3D volume .*\(16, 16, 16, 4\)")),
    BadInput("ct-nan-voxels", _drr_of("nan"), cli_error(r"nan\.nii\.gz: .*NaN")),
    BadInput("ct-2d-nifti", _drr_of("flat"), cli_error(r"flat\.nii\.gz: expected a 3D volume .*\(16, 16\)")),
    BadInput("ct-folder-without-dicom", _drr_of("empty_folder"), cli_error(r"empty_folder: no DICOM files"), slow=True),
    # -- not a CT, or too thin for a DRR (issue 26; in-process twins in tests/test_cli.py and tests/test_ct_readers.py)
    BadInput("ct-one-slice-series", _drr_of("one_slice_ct"),
             cli_error(r"one_slice_ct: volume of 16 x 16 x 1 voxels is too thin for a DRR \(1 voxel along Z\); "
                       r"expected at least 4 voxels along every axis")),
    BadInput("ct-mr-slice", _drr_of("mr_slice_folder"),
             cli_error(r"mr\.dcm: not a CT: Modality MR \(magnetic resonance\); expected a CT series "
                       r"\(Modality CT\)$")),
    BadInput("ct-cr-film-in-a-ct-folder", _drr_of("cr_film_folder"),
             cli_error(r"film\.dcm: not a CT: Modality CR \(computed radiography\); expected a CT series"), slow=True),
    BadInput("ct-mr-volume-nifti", _drr_of("mr_volume"),
             cli_error(r"mr\.nii\.gz: values do not look like a CT in Hounsfield units \(values 0 to .*; expected "),
             slow=True),
    # -- the label map
    BadInput("labels-missing", _drr("--labels", File("missing")), cli_error(r"missing\.nii\.gz: file not found")),
    BadInput("labels-other-grid", _drr("--labels", File("labels_other_grid")),
             cli_error(r"other_grid_seg\.nii\.gz: expected a label map on the CT's grid"), slow=True),
    BadInput("labels-are-the-ct", _drr("--labels", File("ct")), cli_error(r"ct\.nii\.gz: expected whole-number labels, 0 or more"), slow=True),
    BadInput("labels-all-zero", _drr("--labels", File("labels_zero")), cli_error(r"zero_seg\.nii\.gz: .*no non-zero label"), slow=True),
    # -- numbers and names
    BadInput("drr-size-zero", _drr("--size", "0"), cli_error(r"--size: expected a whole number .*got 0$")),
    BadInput("drr-size-negative", _drr("--size", "-5"), cli_error(r"--size: expected .*got -5$")),
    BadInput("drr-size-fraction", _drr("--size", "1.5"), cli_error(r"--size: expected a whole number .*got 1\.5$")),
    BadInput("drr-size-huge", _drr("--size", "100000"), cli_error(r"--size: expected .*to 4096, got 100000$")),
    BadInput("drr-size-text", _drr("--size", "big"), cli_error(r"--size: expected .*got 'big'$")),
    BadInput("drr-sid-zero", _drr("--sid", "0"), cli_error(r"--sid: expected a distance in mm above 0.*got 0$")),
    BadInput("drr-sid-nan", _drr("--sid", "nan"), cli_error(r"--sid: expected a distance .*got 'nan'$")),
    BadInput("drr-sdd-below-sid", _drr("--sid", "1000", "--sdd", "500"), cli_error(r"--sdd: expected more than --sid")),
    BadInput("drr-source-inside-volume", _drr("--sid", "5", "--sdd", "10"),
             cli_error(r"--sid: expected more than the volume's radius"), slow=True),
    BadInput("drr-energy-zero", _drr("--energy-kev", "0"), cli_error(r"--energy-kev: expected .*30-150 keV, got 0$")),
    BadInput("drr-energy-huge", _drr("--energy-kev", "1e9"), cli_error(r"--energy-kev: expected .*30-150 keV")),
    BadInput("drr-view-unknown", _drr("--views", "foo"), cli_error(r"--views: unknown view 'foo'; expected 'ap', 'lateral'")),
    BadInput("drr-view-orbit-zero", _drr("--views", "orbit:0"), cli_error(r"--views: expected .*views in the orbit")),
    BadInput("drr-view-orbit-huge", _drr("--views", "orbit:1000000"), cli_error(r"--views: expected .*from 1 to 3600")),
    BadInput("drr-view-nan", _drr("--views", "ap,nan"), cli_error(r"--views: expected a finite angle")),
    BadInput("drr-framing-unknown", _drr("--framing", "tight"), cli_error(r"--framing: expected one of 'orbit', 'isocenter', got 'tight'")),
    BadInput("drr-flag-misspelt", _drr("--sizee", "64"), cli_error(r"--sizee: unknown flag .*--size")),
    BadInput("drr-out-is-a-file", lambda f, out: orthogen("drr", f.ct, "--out", f.a_file),
             cli_error(r"--out: expected an output folder, but .*a_file\.txt is a file")),
    BadInput("drr-no-ct", lambda f, out: orthogen("drr", "--out", out), cli_error(r"no value for the required argument: ct")),
    # -- phantoms
    BadInput("phantom-count-zero", _phantom(count="0"), cli_error(r"--count: expected .*got 0$")),
    BadInput("phantom-count-negative", _phantom(count="-2"), cli_error(r"--count: expected .*got -2$")),
    BadInput("phantom-seed-negative", _phantom(seed="-1"), cli_error(r"--seed: expected .*at least 0, got -1$")),
    BadInput("phantom-shape-zero", _phantom(shape="0"), cli_error(r"--shape: expected .*got 0$")),
    BadInput("phantom-shape-negative", _phantom(shape="16,-4,16"), cli_error(r"--shape: expected .*got -4$")),
    BadInput("phantom-shape-fraction", _phantom(shape="16.5"), cli_error(r"--shape: expected a whole number")),
    BadInput("phantom-shape-two-numbers", _phantom(shape="16,16"), cli_error(r"--shape: expected one or three numbers")),
    BadInput("phantom-shape-huge", _phantom(shape="100000"), cli_error(r"--shape: expected at most .* voxels")),
    BadInput("phantom-spacing-zero", _phantom(spacing="0"), cli_error(r"--spacing: expected .*above 0, got 0$")),
    BadInput("phantom-spacing-negative", _phantom(spacing="1,-1,1"), cli_error(r"--spacing: expected .*got -1$")),
    BadInput("phantom-spacing-nan", _phantom(spacing="nan"), cli_error(r"--spacing: expected .*got 'nan'$")),
    BadInput("phantom-spacing-huge", _phantom(spacing="1e9"), cli_error(r"--spacing: expected .*at most 100")),
    # -- dataset preparation and the demo
    BadInput("prepare-source-missing", lambda f, out: orthogen("prepare", "x2ct", f.missing, out),
             cli_error(r"missing\.nii\.gz: folder not found")),
    BadInput("prepare-size-too-small", lambda f, out: orthogen("prepare", "x2ct", f.dir, out, "--size", "4"),
             cli_error(r"--size: expected .*from 8 to 512, got 4$")),
    BadInput("prepare-test-fraction-one", lambda f, out: orthogen("prepare", "x2ct", f.dir, out, "--test-fraction", "1"),
             cli_error(r"--test-fraction: expected a fraction in \(0, 1\), got 1$")),
    BadInput("prepare-crop-unknown", lambda f, out: orthogen("prepare", "x2ct", f.dir, out, "--crop", "pelvis"),
             cli_error(r"--crop: expected one of .*'pelvis'"), slow=True),
    BadInput("prepare-knee-missing-source", lambda f, out: orthogen("prepare", "knee-radiographs", f.missing, "--out", out),
             cli_error(r"missing\.nii\.gz: folder not found")),
    BadInput("prepare-knee-split-unknown",
             lambda f, out: orthogen("prepare", "knee-radiographs", f.dir, "--out", out, "--split-by", "patient"),
             cli_error(r"--split-by: expected one of volume, image, got 'patient'$")),
    BadInput("prepare-knee-workers-zero",
             lambda f, out: orthogen("prepare", "knee-radiographs", f.dir, "--out", out, "--workers", "0"),
             cli_error(r"--workers: expected a whole number of parallel workers from 1 to 64, got 0$")),
    BadInput("demo-bundle-missing", lambda f, out: orthogen("demo", "--out", out, "--bundle-dir", f.missing),
             cli_error(r"missing\.nii\.gz: folder not found")),
]

# ---- rows for the bundles: the documented `python -m monai.bundle run inference ...` on bad inputs.
X2CT_BUNDLE = REPO / "bundles" / "spine_x2ct_gan"
KNEE_CT_BUNDLE = REPO / "bundles" / "knee_xray2ct_diffusion"
KNEE_BUNDLE = REPO / "bundles" / "knee_radiograph_diffusion"


def _in_bundle(folder: Path) -> Callable[[Inputs], Path]:
    """A row's ``cwd``: the bundle's folder, where its documented commands run."""
    return lambda _: folder


_in_x2ct_bundle = _in_bundle(X2CT_BUNDLE)
_in_knee_ct_bundle = _in_bundle(KNEE_CT_BUNDLE)
_in_knee_bundle = _in_bundle(KNEE_BUNDLE)


def _bundle_inference(out: Path, *args) -> list:
    """argv of the documented ``python -m monai.bundle run inference`` in a bundle's folder, writing to ``out``."""
    return [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", "configs/inference.json",
            "--bundle_root", ".", "--output_dir", out, *args]


def _biplanar_inference(ap: str = "dx_ap", lateral: str | None = "dx_lateral", *args
                        ) -> Callable[[Inputs, Path], list[str]]:
    """The inference of an X-ray -> CT bundle (spine_x2ct_gan, knee_xray2ct_diffusion: the row's ``cwd``) on
    two of the inputs; a ``File(name)`` arg becomes that input's path."""
    def command(f: Inputs, out: Path) -> list[str]:
        views = ["--input_ap", getattr(f, ap)] + (["--input_lateral", getattr(f, lateral)] if lateral else [])
        return _bundle_inference(out, *views, *(getattr(f, a.name) if isinstance(a, File) else a for a in args))
    return command


def _knee_inference(segmentation: str, *args) -> Callable[[Inputs, Path], list[str]]:
    """The inference of knee_radiograph_diffusion on one input."""
    return lambda f, out: _bundle_inference(out, "--input_segmentation", getattr(f, segmentation), *args)


#: The knee CT bundle's one required argument beside the two views (a row that is not about it passes it).
THICKNESS = ("--slice_thickness", "1.0")


def bundle_error(fragment: str) -> str:
    """A bundle's one error line (printed by ``orthogen.errors.report_input_errors_in_one_line``)."""
    return rf"^error: .*{fragment}"


BUNDLE_ROWS: list[BadInput] = [
    BadInput("x2ct-ap-missing", _biplanar_inference("dx_missing"), bundle_error(r"missing_ap\.dcm: file not found"),
             cwd=_in_x2ct_bundle),
    BadInput("x2ct-ap-rgb", _biplanar_inference("dx_rgb"), bundle_error(r"rgb\.dcm: colour DICOM"), cwd=_in_x2ct_bundle),
    BadInput("x2ct-ap-multi-frame", _biplanar_inference("dx_frames"), bundle_error(r"frames\.dcm: multi-frame DICOM"),
             cwd=_in_x2ct_bundle),
    BadInput("x2ct-ap-no-spacing", _biplanar_inference("dx_no_spacing"),
             bundle_error(r"no_spacing\.dcm: no pixel spacing .*--pixel_spacing"), cwd=_in_x2ct_bundle),
    BadInput("x2ct-ap-zero-spacing", _biplanar_inference("dx_zero_spacing"),
             bundle_error(r"zero_spacing\.dcm: PixelSpacing is \[0\.0, 0\.0\]; expected two positive"),
             cwd=_in_x2ct_bundle),
    BadInput("x2ct-implausible-spacing", _biplanar_inference("dx_ap", "dx_lateral", "--pixel_spacing", "40"),
             bundle_error(r"ap\.dcm: implausible pixel spacing for this model: 40 x 40 mm \(pixel_spacing argument\)"
                          r" makes the cropped ap view \d+ mm across"), cwd=_in_x2ct_bundle),
    BadInput("x2ct-one-view", _biplanar_inference("dx_ap", None), bundle_error(r"input: one view only.*lateral"),
             cwd=_in_x2ct_bundle),
    BadInput("x2ct-ap-is-an-mr-image", _biplanar_inference("mr_image"),
             bundle_error(r"mr\.dcm: not a radiograph: Modality MR \(magnetic resonance\); expected a projection "
                          r"radiograph \(Modality CR, DX, RF, XA\)"), cwd=_in_x2ct_bundle),
    # a chest film at its own spacing: the field of view check (the same check as x2ct-implausible-spacing)
    BadInput("x2ct-chest-film", _biplanar_inference("dx_chest", "dx_chest"),
             bundle_error(r"chest\.dcm: implausible pixel spacing for this model: 8 x 8 mm \(PixelSpacing\) makes the "
                          r"cropped ap view \d+ mm across, but the model was trained on 7\d-105 mm"),
             cwd=_in_x2ct_bundle, slow=True),
    BadInput("x2ct-weights-of-another-network", _biplanar_inference("dx_ap", "dx_lateral", "--ckpt_path", File("weights_other")),
             bundle_error(r"other_weights\.pt: the weights do not fit the configured network: .*; they fit none of "
                          r"this bundle's presets \(the default network, configs/paper_scale\.json\)$"),
             cwd=_in_x2ct_bundle),
    # a segmentation of another size is resampled to the model's 64x64 (tests/test_segmentation_input.py), after its
    # values are checked on its own grid: this 48x48 one is refused for its off-level pixels, not for its size
    BadInput("knee-segmentation-other-size-off-level", _knee_inference("seg_small_off_level"),
             bundle_error(r"small_off_level_seg\.png: 16 pixels are not 0, 0\.5 or 1"), cwd=_in_knee_bundle),
    BadInput("knee-segmentation-off-level", _knee_inference("seg_off_level"),
             bundle_error(r"off_level_seg\.png: 16 pixels are not 0, 0\.5 or 1"), cwd=_in_knee_bundle),
    BadInput("knee-segmentation-empty", _knee_inference("empty"), bundle_error(r"empty\.nii\.gz: file is empty"),
             cwd=_in_knee_bundle),
    BadInput("knee-segmentation-text", _knee_inference("seg_text"), bundle_error(r"notes_seg\.png: "),
             cwd=_in_knee_bundle),
    BadInput("knee-method-unknown", _knee_inference("seg", "--method", "gan"),
             bundle_error(r"method: expected one of ctm, csm, unet, got 'gan'$"), cwd=_in_knee_bundle),
    BadInput("knee-sampler-unknown", _knee_inference("seg", "--sampler", "euler"),
             bundle_error(r"sampler: expected one of pc, ode, stochastic_heun, got 'euler'$"), cwd=_in_knee_bundle),
    # knee_xray2ct_diffusion: its own checks (slice thickness, one detector, its training range) and a lateral file
    BadInput("knee-ct-ap-is-a-ct-volume", _biplanar_inference("ct", "dx_lateral", *THICKNESS),
             bundle_error(r"ct\.nii\.gz: image has shape \(16, 16, 16\); expected a single 2D image"),
             cwd=_in_knee_ct_bundle),
    BadInput("knee-ct-lateral-multi-frame", _biplanar_inference("dx_ap", "dx_frames", *THICKNESS),
             bundle_error(r"frames\.dcm: multi-frame DICOM"), cwd=_in_knee_ct_bundle),
    BadInput("knee-ct-views-of-different-sizes",
             _biplanar_inference("xray_png", "xray_png_40x48", "--pixel_spacing", "4.0", *THICKNESS),
             bundle_error(r"lateral_40x48\.png: views of different sizes: expected the AP radiograph's 48x48 pixels "
                          r"\(one detector\), got 40x48$"), cwd=_in_knee_ct_bundle),
    BadInput("knee-ct-implausible-spacing", _biplanar_inference("dx_ap", "dx_lateral", "--pixel_spacing", "40", *THICKNESS),
             bundle_error(r"ap\.dcm: implausible pixel spacing for this model: 40 x 40 mm \(pixel_spacing argument\)"
                          r" makes the cropped ap view \d+ mm across, but the model was trained on 100-260 mm"),
             cwd=_in_knee_ct_bundle),
    BadInput("knee-ct-zero-slice-thickness", _biplanar_inference("dx_ap", "dx_lateral", "--slice_thickness", "0"),
             bundle_error(r"slice_thickness: expected a number of mm above 0, got 0$"), cwd=_in_knee_ct_bundle),
    BadInput("knee-ct-no-slice-thickness", _biplanar_inference("dx_ap", "dx_lateral"),
             bundle_error(r"slice_thickness: no slice thickness for radiograph inputs; set the CT slice thickness"),
             cwd=_in_knee_ct_bundle),
    # -- slow: the same loader checks as the spine_x2ct_gan rows, or also tested in-process
    BadInput("knee-ct-ap-missing", _biplanar_inference("dx_missing", "dx_lateral", *THICKNESS),
             bundle_error(r"missing_ap\.dcm: file not found"), cwd=_in_knee_ct_bundle, slow=True),
    BadInput("knee-ct-ap-rgb", _biplanar_inference("dx_rgb", "dx_lateral", *THICKNESS),
             bundle_error(r"rgb\.dcm: colour DICOM"), cwd=_in_knee_ct_bundle, slow=True),
    BadInput("knee-ct-ap-zero-spacing", _biplanar_inference("dx_zero_spacing", "dx_lateral", *THICKNESS),
             bundle_error(r"zero_spacing\.dcm: PixelSpacing is \[0\.0, 0\.0\]; expected two positive"),
             cwd=_in_knee_ct_bundle, slow=True),
    BadInput("knee-ct-ap-no-spacing", _biplanar_inference("dx_no_spacing", "dx_lateral", *THICKNESS),
             bundle_error(r"no_spacing\.dcm: no pixel spacing .*--pixel_spacing"), cwd=_in_knee_ct_bundle, slow=True),
    BadInput("knee-ct-one-view", _biplanar_inference("xray_png", None, "--pixel_spacing", "4.0", *THICKNESS),
             bundle_error(r"input: one view only.*lateral"), cwd=_in_knee_ct_bundle, slow=True),
    BadInput("knee-ct-negative-spacing-argument",
             _biplanar_inference("dx_ap", "dx_lateral", "--pixel_spacing", "-0.2", *THICKNESS),
             bundle_error(r"pixel_spacing: expected positive pixel spacings in mm, got -0\.2"), cwd=_in_knee_ct_bundle,
             slow=True),
    BadInput("x2ct-ap-text", _biplanar_inference("dx_text"), bundle_error(r"notes\.dcm: not a readable DICOM"),
             cwd=_in_x2ct_bundle, slow=True),
    BadInput("x2ct-ap-truncated", _biplanar_inference("dx_truncated"), bundle_error(r"truncated\.dcm: "),
             cwd=_in_x2ct_bundle, slow=True),
    BadInput("x2ct-png-without-spacing", _biplanar_inference("xray_png", "dx_lateral"),
             bundle_error(r"ap\.png: no pixel spacing"), cwd=_in_x2ct_bundle, slow=True),
    BadInput("x2ct-negative-spacing-argument", _biplanar_inference("dx_ap", "dx_lateral", "--pixel_spacing", "-0.2"),
             bundle_error(r"pixel_spacing: expected positive pixel spacings in mm, got -0\.2"), cwd=_in_x2ct_bundle,
             slow=True),
    BadInput("x2ct-unknown-output-format", _biplanar_inference("dx_ap", "dx_lateral", "--output_format", "mha"),
             bundle_error(r"output_format: expected one of nifti, dicom, got 'mha'"), cwd=_in_x2ct_bundle, slow=True),
    BadInput("x2ct-weights-text", _biplanar_inference("dx_ap", "dx_lateral", "--ckpt_path", File("weights_text")),
             bundle_error(r"weights\.pt\.txt: not a readable PyTorch state dict"), cwd=_in_x2ct_bundle, slow=True),
]

ROWS = CLI_ROWS + BUNDLE_ROWS


# ---------------------------------------------------------------- the runner and the checks

@dataclass
class RowRun:
    argv: list[str]
    out: Path
    result: subprocess.CompletedProcess


def _run_row(row: BadInput, inputs: Inputs, work: Path) -> RowRun:
    out = work / "out"
    run_dir = work / "cwd"
    run_dir.mkdir(parents=True)
    argv = [str(a) for a in row.command(inputs, out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=ROW_TIMEOUT_S,
                            cwd=row.cwd(inputs) if row.cwd else run_dir, env={**os.environ, **row.env})
    return RowRun(argv, out, result)


@pytest.fixture(scope="module")
def row_runs(request, tmp_path_factory) -> dict[str, Future]:
    """Start the selected rows' subprocesses (a few at a time); each test then waits for its own."""
    inputs = make_inputs(tmp_path_factory.mktemp("bad_inputs"))
    selected = [item.callspec.params["row"] for item in request.session.items
                if getattr(item, "callspec", None) is not None and "row" in item.callspec.params
                and isinstance(item.callspec.params["row"], BadInput)]
    pool = ThreadPoolExecutor(max_workers=PARALLEL_RUNS)
    runs = {row.id: pool.submit(_run_row, row, inputs, tmp_path_factory.mktemp(row.id)) for row in selected}
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


def check_bad_input(row: BadInput, run: RowRun) -> None:
    """The shared assertions: failed, no traceback, the expected last line, nothing written."""
    done = run.result
    report = f"{' '.join(run.argv)}\n--- exit {done.returncode}; stderr:\n{done.stderr[-3000:]}"
    assert done.returncode != 0, report
    assert "Traceback" not in done.stderr, report
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, report
    assert re.search(row.expected, lines[-1]), f"last line does not match {row.expected!r}\n{report}"
    left = sorted(p for p in run.out.rglob("*") if p.is_file()) if run.out.exists() else []
    assert not left, f"files left behind: {left}\n{report}"


def test_row_ids_are_unique():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id, marks=[pytest.mark.slow] if row.slow else [])
                                 for row in ROWS])
def test_bad_input(row: BadInput, row_runs):
    check_bad_input(row, row_runs[row.id].result())


# ---------------------------------------------------------------- the library's twins of the CLI rows
# A library caller gets the same one-line InputError, naming the parameter instead of the flag.

def _fit(**kwargs):
    from orthogen.drr import fit_detector

    args = {"volume_shape": (16, 16, 16), "affine": np.diag([2.0, 2.0, 2.0, 1.0]), "size": 32, **kwargs}
    return fit_detector(args.pop("volume_shape"), args.pop("affine"), args.pop("size"), **args)


def _geometry(**kwargs):
    from orthogen.drr import ProjectionGeometry

    return ProjectionGeometry(**kwargs)


def _render(**kwargs):
    from orthogen.drr import ProjectionGeometry, render_drr

    volume, affine = np.zeros((8, 8, 8), np.float32), np.diag([2.0, 2.0, 2.0, 1.0])
    return render_drr(volume, affine, ProjectionGeometry((8, 8), (4.0, 4.0)), **kwargs)


def _grid(shape=(16, 16, 16), spacing=(1.0, 1.0, 1.0)):
    from orthogen.phantoms.grid import VoxelGrid

    return VoxelGrid(shape, spacing)


LIBRARY_ROWS = [
    ("fit-size-zero", lambda: _fit(size=0), r"^size: expected a whole number .*got 0$"),
    ("fit-size-fraction", lambda: _fit(size=1.5), r"^size: expected a whole number .*got 1\.5$"),
    ("fit-size-huge", lambda: _fit(size=10**6), r"^size: expected .*to 4096"),
    ("fit-sid-zero", lambda: _fit(source_to_isocenter_mm=0.0), r"^source_to_isocenter_mm: expected a distance"),
    ("fit-sdd-below-sid", lambda: _fit(source_to_detector_mm=500.0), r"^source_to_detector_mm: expected more than"),
    ("fit-source-inside", lambda: _fit(source_to_isocenter_mm=10.0, source_to_detector_mm=20.0),
     r"^source_to_isocenter_mm: expected more than the volume's radius"),
    ("fit-framing", lambda: _fit(framing="tight"), r"^framing: expected one of 'orbit', 'isocenter'"),
    ("fit-volume-shape", lambda: _fit(volume_shape=(16, 0, 16)), r"^volume_shape: expected .*got 0$"),
    ("fit-affine-singular", lambda: _fit(affine=np.zeros((4, 4))), r"^affine: expected a finite, invertible"),
    ("geometry-shape-fraction", lambda: _geometry(detector_shape=(8.5, 8)), r"^detector_shape: expected a whole number"),
    ("geometry-spacing-nan", lambda: _geometry(pixel_spacing_mm=(1.0, float("nan"))), r"^pixel_spacing_mm: expected"),
    ("geometry-sdd-equals-sid", lambda: _geometry(source_to_isocenter_mm=900.0, source_to_detector_mm=900.0),
     r"^source_to_detector_mm: expected more than"),
    ("render-energy", lambda: _render(energy_kev=0), r"^energy_kev: expected an effective energy in 30-150 keV"),
    ("render-view", lambda: _render(views="foo"), r"^views: unknown view 'foo'"),
    ("render-normalizer-nan", lambda: _render(normalizer=float("nan")), r"^normalizer: expected a positive"),
    ("grid-too-many-voxels", lambda: _grid(shape=(4096, 4096, 4096)), r"^shape: expected at most"),
    ("grid-spacing-huge", lambda: _grid(spacing=(1.0, 1e9, 1.0)), r"^spacing: expected .*at most 100"),
]


@pytest.mark.parametrize("call, expected", [r[1:] for r in LIBRARY_ROWS], ids=[r[0] for r in LIBRARY_ROWS])
def test_library_refuses_the_same_inputs(call, expected):
    from orthogen.errors import InputError

    with pytest.raises(InputError) as raised:
        call()
    assert re.search(expected, str(raised.value)) and "\n" not in str(raised.value), str(raised.value)
