"""The ``orthogen`` command line (python-fire): ``orthogen phantom|drr|demo|prepare ...``.

Each command is a thin wrapper over the library; run ``orthogen COMMAND --help`` for its flags.

Every command first checks its arguments — paths exist, numbers are numbers in range, names are known —
and only then imports torch, MONAI and the rest of the package, so a mistyped path or flag is answered
in a fraction of a second instead of after the ~5 s those imports take. Nothing is written until every
input has been read and checked. A bad input ends the command with exit status 1 and one line on
stderr, ``orthogen: error: <what>: <expected ..., got ...>``, never a traceback.
"""
from __future__ import annotations

import contextlib
import inspect
import sys
from pathlib import Path
from typing import Callable, Iterator

from orthogen.drr import arguments as checks
from orthogen.errors import InputError, OrthoGenError

#: Most phantoms one call writes.
MAX_PHANTOM_COUNT = 10_000
#: Largest X2CT cube edge (voxels): 512^3 is already ~0.5 GB per case in float32.
MAX_X2CT_SIZE = 512


# ---------------------------------------------------------------- argument checks (no heavy imports)

def _text(value, name: str) -> str:
    """A path or a name as text; fire turns ``123`` into an int and a bare ``--out`` into True."""
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"expected a path or a name, got {value!r}", name)
    return str(value)


def _input_path(value, name: str, *, folder: bool | None = None) -> Path:
    """An existing input: a non-empty file, or a folder (``folder=None``: either, e.g. a DICOM series).

    The messages are those of the readers (``orthogen.io``), so a user reads the same words either way.
    """
    path = Path(_text(value, name))
    if not path.exists():
        raise InputError("folder not found" if folder else "file not found", path)
    if folder and not path.is_dir():
        raise InputError(f"expected a folder, got a file ({name})", path)
    if folder is False and not path.is_file():
        raise InputError(f"expected a file, got a folder ({name})", path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path)
    return path


def _output_folder(value, name: str) -> Path:
    """The folder to write into; it need not exist yet, but it must not be (or lie under) a file."""
    path = Path(_text(value, name))
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                raise InputError(f"expected an output folder, but {existing} is a file", name)
            break
    return path


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"expected a flag (given or not, or --{name.lstrip('-')}=True/False), got {value!r}", name)
    return value


def _numbers(value, name: str, parse: Callable) -> tuple:
    """'128' / 128 / '128,128,96' / (128, 128, 96) -> a 3-tuple, each item through ``parse(item, name)``."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if len(items) not in (1, 3):
        raise InputError(f"expected one or three numbers, got {len(items)}: {value!r}", name)
    values = tuple(parse(item, name) for item in items)
    return values * 3 if len(values) == 1 else values


def _voxel_count(item, name: str) -> int:
    return checks.whole_number(item, name, what="voxels per axis")


def _voxel_size(item, name: str) -> float:
    size = checks.finite_number(item, name, what="voxel sizes in mm above 0")
    if size <= 0:
        raise InputError(f"expected voxel sizes in mm above 0, got {item!r}", name)
    return size


def _seed(value, name: str = "--seed") -> int:
    return checks.whole_number(value, name, minimum=0)


@contextlib.contextmanager
def _flag_names(names: dict[str, str]) -> Iterator[None]:
    """Re-label a library InputError about a parameter (``source_to_isocenter_mm``) with its flag (``--sid``)."""
    try:
        yield
    except InputError as error:
        if error.source in names:
            raise InputError(error.problem, names[error.source]) from None
        raise


# ---------------------------------------------------------------- commands

class PhantomCommands:
    """Procedural phantom CTs written in the CTSpine1K layout: OUT/data/<case>.nii.gz + OUT/label/<case>_seg.nii.gz."""

    def knee(self, seed: int = 0, shape="128", spacing="1.0", out: str = "output/phantoms", count: int = 1):
        """Knee phantoms (femur 1, tibia 2, fibula 3, patella 4) for seeds seed .. seed+count-1.

        Args:
            shape: voxels, one number or X,Y,Z.
            spacing: mm, one number or x,y,z.
        """
        return _write_phantoms("knee", seed, shape, spacing, out, count)

    def spine(self, seed: int = 0, shape="128", spacing="1.5", out: str = "output/phantoms", count: int = 1):
        """Lumbar spine phantoms (L1..L5 = labels 20..24) for seeds seed .. seed+count-1.

        Args:
            shape: voxels, one number or X,Y,Z.
            spacing: mm, one number or x,y,z.
        """
        return _write_phantoms("spine", seed, shape, spacing, out, count)


def _write_phantoms(kind: str, seed, shape, spacing, out, count) -> None:
    seed = _seed(seed)
    count = checks.whole_number(count, "--count", maximum=MAX_PHANTOM_COUNT, what="phantoms")
    shape = _numbers(shape, "--shape", _voxel_count)
    spacing = _numbers(spacing, "--spacing", _voxel_size)
    out = _output_folder(out, "--out")

    from orthogen.phantoms import KneePhantom, SpinePhantom
    from orthogen.phantoms.grid import VoxelGrid

    with _flag_names({"shape": "--shape", "spacing": "--spacing", "seed": "--seed"}):
        VoxelGrid(shape, spacing)  # the library's limits (total voxels, largest spacing)
    model = {"knee": KneePhantom, "spine": SpinePhantom}[kind]

    from orthogen.data.case_layout import write_case

    for s in range(seed, seed + count):
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
        size: detector pixels per side (1-4096).
        sid: source-to-isocenter distance, mm (cone beam).
        sdd: source-to-detector distance, mm (cone beam; more than sid).
        parallel: parallel beam instead of cone beam.
        energy_kev: effective photon energy, 30-150 keV.
        labels: a label map on the CT's grid to project as well (bone-only path-length images,
            "<stem>_bone_<view>").
        framing: "orbit" (volume on the detector at any angle) or "isocenter" (tight on the volume).
    """
    ct_path = _input_path(ct, "ct")
    labels_path = None if labels is None else _input_path(labels, "--labels")
    angles = checks.parse_views(views, "--views")
    size = checks.detector_size(size, "--size")
    parallel = _flag(parallel, "--parallel")
    if not parallel:
        sid, sdd = checks.source_distances(sid, sdd, sid_name="--sid", sdd_name="--sdd")
    energy = checks.energy_kev(energy_kev, "--energy-kev")
    framing = checks.framing(framing, "--framing")
    out = _output_folder(out, "--out")

    from orthogen.drr import DRR, fit_detector, project_labels, read_ct_for_drr, render_drr
    from orthogen.drr.files import save_views

    volume = read_ct_for_drr(ct_path)  # a CT in HU (Modality CT, or values like HU), >= 4 voxels along every axis
    affine = volume.affine.numpy()
    label_map = None if labels_path is None else _label_map(_read_ct(labels_path), volume, labels_path)
    with _flag_names({"source_to_isocenter_mm": "--sid", "source_to_detector_mm": "--sdd"}):
        geometry = fit_detector(volume.shape, affine, size, source_to_isocenter_mm=sid,
                                source_to_detector_mm=sdd, parallel=parallel, framing=framing)
    result = render_drr(volume.as_tensor(), affine, geometry, angles, energy_kev=energy)
    bone = None
    if label_map is not None:
        path_mm = project_labels(label_map, affine, geometry, angles).sum(dim=1)
        norm = path_mm.amax(dim=(1, 2)).clamp(min=1e-6)
        bone = DRR(path_mm / norm[:, None, None], path_mm, result.angles_deg, result.pixel_spacing_mm, norm)
    stem = ct_path.resolve().name.split(".")[0]
    written = save_views(result, geometry, out, stem)
    if bone is not None:
        written += save_views(bone, geometry, out, f"{stem}_bone")
    for path in written:
        print(path)


def _read_ct(path: Path):
    """``orthogen.io.read_ct``; should a reader fail on an odd file with anything but InputError (a reader
    bug), the user still gets one line naming the file, and the cause stays chained for a debugger."""
    from orthogen.io import read_ct

    try:
        return read_ct(path)
    except OrthoGenError:
        raise
    except Exception as error:
        raise InputError(f"could not be read as a CT ({type(error).__name__}: {error})", path) from error


#: Most distinct labels a label map may hold; more is an image passed as labels (TotalSegmentator has 117).
MAX_LABELS = 255


def _label_map(labels, ct, path: Path):
    """The label map as int64 (X, Y, Z), checked against the CT: same grid, whole-number labels, some bone."""
    import torch

    if tuple(labels.shape) != tuple(ct.shape):
        raise InputError(f"expected a label map on the CT's grid, shape {tuple(ct.shape)}, got {tuple(labels.shape)}",
                         path)
    if not torch.allclose(labels.affine.double(), ct.affine.double(), atol=1e-3):
        raise InputError("expected a label map on the CT's grid (same voxel -> world affine); its affine differs",
                         path)
    values = labels.as_tensor()
    if not bool(torch.isfinite(values).all()) or not bool((values == values.round()).all()):
        raise InputError("expected whole-number labels; found fractional or NaN values (is this an image?)", path)
    if float(values.min()) < 0:
        raise InputError(f"expected whole-number labels, 0 or more; found {float(values.min()):g} (is this an image?)",
                         path)
    distinct = torch.unique(values)
    nonzero = int((distinct != 0).sum())
    if nonzero == 0:
        raise InputError("the label map has no non-zero label to project", path)
    if nonzero > MAX_LABELS:
        raise InputError(f"expected at most {MAX_LABELS} labels, got {nonzero} distinct values (is this an image?)",
                         path)
    return values.to(torch.int64)


class PrepareCommands:
    """Dataset preparation into the on-disk layouts the bundles read."""

    def x2ct(self, source: str, out: str, size: int = 128, crop: str = "vertebra", margin_mm: float = 4.0,
             test_fraction: float = 0.2, seed: int = 0) -> None:
        """CTs + vertebra masks (CTSpine1K layout, real or phantom) -> X2CT case files + datalist.json.

        Args:
            source: folder with data/<case>.nii.gz and label/<case>_seg.nii.gz (any depth).
            out: output folder (one <case>.h5 per case, train.txt, test.txt, datalist.json).
            size: cube edge in voxels and radiograph side in pixels (8-512).
            crop: "vertebra" (a case per vertebra) or "spine" (a case per CT).
            test_fraction: share of the source CTs held out for testing, in (0, 1).
        """
        source = _input_path(source, "source", folder=True)
        out = _output_folder(out, "--out")
        size = checks.whole_number(size, "--size", minimum=8, maximum=MAX_X2CT_SIZE, what="voxels per cube edge")
        crop = _text(crop, "--crop")
        margin_mm = checks.finite_number(margin_mm, "--margin-mm", what="a margin in mm, 0 or more")
        if margin_mm < 0:
            raise InputError(f"expected a margin in mm, 0 or more, got {margin_mm:g}", "--margin-mm")
        test_fraction = checks.finite_number(test_fraction, "--test-fraction", what="a fraction in (0, 1)")
        if not 0.0 < test_fraction < 1.0:
            raise InputError(f"expected a fraction in (0, 1), got {test_fraction:g}", "--test-fraction")
        seed = _seed(seed)

        from orthogen.data.x2ct_prepare import X2CTPreparation, prepare_x2ct_dataset

        with _flag_names({"crop": "--crop", "size": "--size", "test_fraction": "--test-fraction"}):
            prep = X2CTPreparation(size=size, crop=crop, margin_mm=margin_mm, test_fraction=test_fraction, seed=seed)
        datalist = prepare_x2ct_dataset(source, out, prep)
        print(f"{out}: {len(datalist['training'])} training, {len(datalist['validation'])} validation, "
              f"{len(datalist['test'])} test cases; {Path(out) / 'datalist.json'}")

    def knee_radiographs(self, source: str, out: str, size: int = 256, views: int = 60, split_by: str = "volume",
                         seed: int = 0, workers: int = 1) -> None:
        """Leg/knee CTs (NIfTI, NRRD or DICOM series folders, real or phantom) -> orbit DRRs + segmentations.

        Args:
            source: folder of CTs (any depth; ``*_seg`` label maps beside them are skipped).
            out: output folder (<case>/<case>_aNNN_{radiograph,contour,contour_bone}.png + datalist.json).
            size: detector pixels per side (8-4096).
            views: DRRs per CT over 360 degrees (60 = 6-degree steps).
            split_by: "volume" (9:1:1 by CT) or "image" (the seed paper's random split of images).
            workers: CTs rendered in parallel.
        """
        source = _input_path(source, "source", folder=True)
        out = _output_folder(out, "--out")
        size = checks.whole_number(size, "--size", minimum=8, maximum=4096, what="detector pixels per side")
        views = checks.whole_number(views, "--views", minimum=1, maximum=3600, what="views per CT")
        split_by = _text(split_by, "--split-by")
        seed = _seed(seed)
        workers = checks.whole_number(workers, "--workers", minimum=1, maximum=64, what="parallel workers")

        from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, prepare_knee_radiographs

        with _flag_names({"split_by": "--split-by", "size": "--size", "views": "--views"}):
            prep = KneeRadiographPreparation(size=size, views=views, split_by=split_by, seed=seed)
        datalist = prepare_knee_radiographs(source, out, prep, workers=workers)
        print(f"{out}: {len(datalist['training'])} training, {len(datalist['validation'])} validation, "
              f"{len(datalist['test'])} test images from {datalist['preparation']['cases']} CTs; "
              f"{Path(out) / 'datalist.json'}")

    def knee_ct(self, source: str, out: str, size: int = 128, drr_size: int | None = None, margin_mm: float = 5.0,
                split: str = "8:1:1", seed: int = 0, workers: int = 1) -> None:
        """Knee CTs (NIfTI, NRRD or DICOM series folders, real or phantom) -> view-aligned CT cubes + AP/lateral
        DRRs with their pixel spacing and the CT's slice thickness, one <case>.h5 each, + datalist.json.

        Args:
            source: folder of CTs (any depth; ``*_seg`` label maps beside them are skipped).
            out: output folder (<case>.h5 per CT, datalist.json).
            size: CT cube edge in voxels (8-512; 32, 64 or 128 for knee_xray2ct_diffusion).
            drr_size: DRR side in pixels (8-512); default: --size.
            margin_mm: margin around the body's box, mm.
            split: training:validation:test ratio by CT, e.g. 8:1:1 (a ratio may be 0, training not).
            seed: seed of the split.
            workers: CTs prepared in parallel.
        """
        source = _input_path(source, "source", folder=True)
        out = _output_folder(out, "--out")
        size = checks.whole_number(size, "--size", minimum=8, maximum=MAX_X2CT_SIZE, what="voxels per cube edge")
        if drr_size is not None:
            drr_size = checks.whole_number(drr_size, "--drr-size", minimum=8, maximum=MAX_X2CT_SIZE,
                                           what="DRR pixels per side")
        margin_mm = checks.finite_number(margin_mm, "--margin-mm", what="a margin in mm, 0 or more")
        if margin_mm < 0:
            raise InputError(f"expected a margin in mm, 0 or more, got {margin_mm:g}", "--margin-mm")
        seed = _seed(seed)
        workers = checks.whole_number(workers, "--workers", minimum=1, maximum=64, what="parallel workers")

        from orthogen.data.knee_ct_prepare import KneeCTPreparation, parse_split, prepare_knee_ct

        split = parse_split(split, "--split")
        with _flag_names({"size": "--size", "drr_size": "--drr-size", "margin_mm": "--margin-mm", "split": "--split"}):
            prep = KneeCTPreparation(size=size, drr_size=drr_size, margin_mm=margin_mm, split=split, seed=seed)
            datalist = prepare_knee_ct(source, out, prep, workers=workers)
        print(f"{out}: {len(datalist['training'])} training, {len(datalist['validation'])} validation, "
              f"{len(datalist['test'])} test cases of {size}^3 from {datalist['preparation']['cases']} CTs; "
              f"{Path(out) / 'datalist.json'}")


def demo(out: str = "output/demo", seed: int = 0, bundle_dir: str = "bundles/spine_x2ct_gan",
         knee_radiograph_bundle_dir: str = "bundles/knee_radiograph_diffusion",
         knee_ct_bundle_dir: str = "bundles/knee_xray2ct_diffusion") -> None:
    """Phantom knee and spine -> AP/lateral DRRs, X2CT-GAN on a phantom vertebra, a knee radiograph
    generated from a phantom's segmentation and a knee CT from a phantom's two DRRs -> files + one montage."""
    out = _output_folder(out, "--out")
    seed = _seed(seed)
    bundles = []
    for value, option in ((bundle_dir, "--bundle-dir"), (knee_radiograph_bundle_dir, "--knee-radiograph-bundle-dir"),
                          (knee_ct_bundle_dir, "--knee-ct-bundle-dir")):
        bundle = _input_path(value, option, folder=True)
        _input_path(bundle / "configs" / "inference.json", option, folder=False)
        bundles.append(bundle)

    from orthogen.demo import run_demo

    for path in run_demo(out, seed=seed, bundle_dir=bundles[0], knee_radiograph_bundle_dir=bundles[1],
                         knee_ct_bundle_dir=bundles[2]):
        print(path)


COMMANDS = {"phantom": PhantomCommands, "drr": drr, "prepare": PrepareCommands, "demo": demo}


# ---------------------------------------------------------------- entry point

def _error_line(message: str) -> str:
    """``orthogen: error: <message>`` on one line (a reader's message may carry a library's newlines)."""
    return "orthogen: error: " + " ".join(str(message).split())


def _command_of(args: list[str]) -> tuple[list[str], Callable | None, list[str]]:
    """(command words, the function they name or None, the remaining arguments) of ``orthogen ARGS``."""
    words: list[str] = []
    component: object = COMMANDS
    rest = list(args)
    while rest and not inspect.isfunction(component):
        word = rest[0]
        if isinstance(component, dict):
            component = component.get(word)
        elif inspect.isclass(component) and not word.startswith("_"):
            component = getattr(component, word, None)
        else:
            component = None
        if component is None:
            return words, None, rest
        words.append(rest.pop(0))
    return words, (component if inspect.isfunction(component) else None), rest


def _check_flags(args: list[str]) -> None:
    """Refuse an unknown ``--flag`` before anything runs.

    fire calls the command with the flags it knows and only then complains about the rest, so
    ``orthogen drr ct.nii.gz --sizee 64`` would render at the default size, write the files, and fail
    afterwards.
    """
    words, function, rest = _command_of(args)
    if function is None:
        return
    if "--" in rest:
        rest = rest[: rest.index("--")]
    parameters = [p for p in inspect.signature(function).parameters if p != "self"]
    for token in rest:
        if not token.startswith("--") or token == "--":
            continue
        flag = token.split("=", 1)[0]
        key = flag[2:].replace("-", "_")
        if key == "help" or key in parameters or (key.startswith("no") and key[2:] in parameters):
            continue
        known = ", ".join("--" + p.replace("_", "-") for p in parameters)
        raise InputError(f"unknown flag for 'orthogen {' '.join(words)}'; expected one of {known}", flag)


def _one_line_usage_errors(fire_core, help_command: str) -> None:
    """Make fire's own usage errors (a missing argument, too many) one ``orthogen: error:`` line.

    fire prints the error and then the whole usage text to stderr; we print the error and where help is.
    ``--help`` keeps fire's display. If a future fire renames the hook, its own display is kept.
    """
    original = getattr(fire_core, "_DisplayError", None)
    if original is None:
        return
    original = getattr(original, "fire_display_error", original)

    def display_error(component_trace) -> None:
        last = component_trace.elements[-1]
        if any(flag in last.args for flag in ("-h", "--help")):
            return original(component_trace)
        print(_error_line(f"{last.ErrorAsStr()} (see: {help_command} --help)"), file=sys.stderr)

    display_error.fire_display_error = original
    fire_core._DisplayError = display_error


def main(argv: list[str] | None = None) -> None:
    """Run ``orthogen`` with ``argv`` (default: the process's arguments)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        _check_flags(args)
        import fire
        import fire.core

        _one_line_usage_errors(fire.core, " ".join(["orthogen", *_command_of(args)[0]]))
        fire.Fire(COMMANDS, command=args, name="orthogen")
    except OrthoGenError as error:
        raise SystemExit(_error_line(str(error))) from None
    except OSError as error:  # a folder that cannot be written, a full disk: the system's words, no traceback
        where = f"{error.filename}: " if error.filename else ""
        raise SystemExit(_error_line(f"{where}{error.strerror or error}")) from None


if __name__ == "__main__":
    main()
