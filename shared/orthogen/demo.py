"""``make demo``: the whole chain on embedded data — phantom CTs -> AP/lateral DRRs -> files and a montage,
then the spine_x2ct_gan bundle's inference on a fresh phantom vertebra, scored against its true CT, and
the knee_radiograph_diffusion bundle's radiograph from a fresh phantom knee's contour+bone segmentation,
beside the DRR it should resemble, and the knee_xray2ct_diffusion bundle's CT from that knee's AP and
lateral DRRs, scored by bone Dice after rigid registration.

Everything here is phantom data generated on the spot; the montage says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from nibabel.affines import apply_affine

from orthogen.data.case_layout import write_case
from orthogen.data.knee_ct_prepare import KneeCTPreparation, knee_ct_case
from orthogen.data.knee_radiograph_prepare import KneeRadiographPreparation, render_case
from orthogen.data.segmentation_input import LoadRadiographImaged
from orthogen.data.x2ct_hdf5 import read_x2ct_case, write_x2ct_case
from orthogen.data.x2ct_prepare import X2CTPreparation, cases_of
from orthogen.drr import fit_detector, project_labels, render_drr
from orthogen.drr.files import save_views
from orthogen.evaluation.metric_table_text import format_metric_table
from orthogen.io import read_ct, read_segmentation_image
from orthogen.metrics.bone_overlap import bone_overlap
from orthogen.metrics.radiograph import radiograph_metrics
from orthogen.metrics.x2ct import x2ct_metric_table
from orthogen.montage import DISPLAY_WINDOW_HU, MontageRow, ras_slices, write_montage
from orthogen.phantoms import KneePhantom, PhantomCT, SpinePhantom
from orthogen.transforms import ClipNormalizeHU


DEMO_SHAPE = (128, 128, 128)
DRR_SIZE = 256
#: The demo's spine for X2CT-GAN: a seed outside the shipped model's training seeds (100-179).
X2CT_DEMO_SEED = 7
X2CT_DEMO_VERTEBRA = 22  # L3


def _phantom_row(title: str, case: str, phantom: PhantomCT, out_dir: Path) -> tuple[MontageRow, list[Path]]:
    files = write_case(phantom.volume_hu, phantom.labels, phantom.affine, out_dir / "phantoms", case)
    paths = [files.image, files.mask]
    geometry = fit_detector(phantom.volume_hu.shape, phantom.affine, DRR_SIZE)
    drr = render_drr(torch.from_numpy(phantom.volume_hu), phantom.affine, geometry, "ap,lateral")
    paths += save_views(drr, geometry, out_dir / "drr", case)
    bone_ap = project_labels(phantom.labels, phantom.affine, geometry, "ap").sum(dim=1)[0].numpy()
    images = [("DRR AP", drr.image[0].numpy()), ("DRR lateral", drr.image[1].numpy()),
              ("bone-only AP (path length)", bone_ap / max(float(bone_ap.max()), 1e-6))]
    values, counts = np.unique(phantom.labels[phantom.labels > 0], return_counts=True)
    largest_bone = np.argwhere(phantom.labels == values[np.argmax(counts)]).mean(axis=0)  # slices through it
    return MontageRow(title, phantom.volume_hu, phantom.affine, images,
                      centre_mm=tuple(apply_affine(phantom.affine, largest_bone))), paths


#: Knees for the variety rows: (straight right, straight left), (flexed right, flexed left).
KNEE_VARIETY_SEEDS = ((19, 16), (11, 17))
KNEE_VARIETY_SHAPE, KNEE_VARIETY_SPACING = (100, 100, 100), (1.6, 1.6, 1.6)  # 160 mm: the whole knee


def _knee_variety_rows() -> list[MontageRow]:
    """Coronal and sagittal slices through the knee centre of phantom knees of different seeds, each
    captioned with its drawn side, flexion, leg rotation, bone scale and joint offset."""
    rows = []
    lo, hi = DISPLAY_WINDOW_HU
    for seeds in KNEE_VARIETY_SEEDS:
        images = []
        for seed in seeds:
            knee = KneePhantom.from_seed(seed)
            ct = knee.render(KNEE_VARIETY_SHAPE, KNEE_VARIETY_SPACING)
            slices = {name: image for name, image, _ in ras_slices(ct.volume_hu, ct.affine, knee.joint_offset_mm)}
            caption = (f"seed {seed}: {knee.side}, flexion {knee.flexion_deg:.0f}\N{DEGREE SIGN}, "
                       f"rotation {knee.leg_rotation_deg:+.0f}\N{DEGREE SIGN}\nscale {knee.bone_scale:.2f}, offset "
                       + ", ".join(f"{v:+.0f}" for v in knee.joint_offset_mm) + " mm")
            images += [(f"{caption}\n{plane}", np.clip((slices[plane] - lo) / (hi - lo), 0.0, 1.0))
                       for plane in ("coronal", "sagittal")]
        rows.append(MontageRow(f"phantom knees, seeds {seeds[0]}, {seeds[1]}", images=images))
    return rows


def _x2ct_rows(bundle_dir: Path, out_dir: Path) -> tuple[list[MontageRow], list[Path]]:
    """Run the bundle's inference config on one vertebra of a fresh phantom spine; rows: truth, prediction."""
    parser = ConfigParser()
    parser.read_config(bundle_dir / "configs" / "inference.json")
    parser.read_meta(bundle_dir / "configs" / "metadata.json")
    size = int(parser.get_parsed_content("image_size"))
    hu_window = (float(parser["hu_min"]), float(parser["hu_max"]))
    spine = SpinePhantom.from_seed(X2CT_DEMO_SEED).render(shape=DEMO_SHAPE)
    source = write_case(spine.volume_hu, spine.labels, spine.affine, out_dir / "phantoms", f"spine_{X2CT_DEMO_SEED:04d}")
    name, case = next((n, c) for n, c in cases_of(source, X2CTPreparation(size=size))
                      if n.endswith(f"_v{X2CT_DEMO_VERTEBRA}"))
    h5 = write_x2ct_case(out_dir / "x2ct" / f"{name}.h5", case)
    parser.update({"bundle_root": str(bundle_dir), "input_h5": str(h5), "output_dir": str(out_dir / "x2ct"),
                   "data_label": "phantom", "device": "$torch.device('cpu')", "samples": KNEE_CT_DEMO_SAMPLES})
    parser.get_parsed_content("evaluator").run()
    ct_path = out_dir / "x2ct" / f"{name}_ct.nii.gz"
    predicted = read_ct(ct_path).numpy()
    truth = read_x2ct_case(h5).ct_hu
    window = ClipNormalizeHU(*hu_window)
    table = x2ct_metric_table(np.asarray(window(predicted[None])[0]), np.asarray(window(truth[None])[0]))
    note = "X2CT metrics, this case\n(phantom, not patient data)\n\n" + format_metric_table({"X2CT-GAN": table})
    lumbar = spine.label_names[X2CT_DEMO_VERTEBRA]
    rows = [
        MontageRow(f"true CT, phantom {lumbar}", truth, case.affine,
                   [("DRR AP (input)", case.ap), ("DRR lateral (input)", case.lateral)]),
        MontageRow(f"X2CT-GAN CT, {lumbar}", predicted, case.affine, [], note),
    ]
    return rows, [h5, ct_path, out_dir / "x2ct" / f"{name}_montage.png"]


#: The demo's knee for the radiograph model: a seed outside the shipped models' training phantoms (100-132),
#: rendered on their grid (80^3 voxels of 2 mm, as in the bundle's docs).
KNEE_RADIOGRAPH_DEMO_SEED = 7
KNEE_RADIOGRAPH_DEMO_GRID = ((80, 80, 80), (2.0, 2.0, 2.0))


def _knee_radiograph_row(bundle_dir: Path, out_dir: Path) -> tuple[MontageRow, list[Path]]:
    """Run the bundle's default inference (CTM, contour+bone) on the AP view of a fresh phantom knee."""
    parser = ConfigParser()
    parser.read_config(bundle_dir / "configs" / "inference.json")
    parser.read_meta(bundle_dir / "configs" / "metadata.json")
    knee = KneePhantom.from_seed(KNEE_RADIOGRAPH_DEMO_SEED).render(*KNEE_RADIOGRAPH_DEMO_GRID)
    case = write_case(knee.volume_hu, knee.labels, knee.affine, out_dir / "phantoms",
                      f"knee_{KNEE_RADIOGRAPH_DEMO_SEED:04d}_2mm")
    views_dir = out_dir / "knee_radiographs"
    prep = KneeRadiographPreparation(size=int(parser.get_parsed_content("image_size")), views=4)
    view = render_case(Path(case.image), views_dir, prep)[0]  # 0 degrees: the AP view
    condition = parser["condition"]
    segmentation_path = views_dir / view[condition]
    parser.update({"bundle_root": str(bundle_dir), "input_segmentation": str(segmentation_path),
                   "output_dir": str(out_dir / "knee_radiograph"), "data_label": "phantom",
                   "device": "$torch.device('cpu')"})
    inferer = parser.get_parsed_content("inferer")
    parser.get_parsed_content("evaluator").run()
    generated_path = out_dir / "knee_radiograph" / f"{segmentation_path.stem}_radiograph.png"
    load = LoadRadiographImaged(keys="label")
    generated = load({"label": str(generated_path)})["label"][0].numpy()
    drr = load({"label": str(views_dir / view["image"])})["label"][0].numpy()
    scores = radiograph_metrics(torch.from_numpy(generated)[None], torch.from_numpy(drr)[None])
    note = (f"{inferer.describe()}\n{parser.get_parsed_content('_meta_#orthogen_weights')} weights\n"
            f"MAE {scores['MAE']:.4f}, PSNR {scores['PSNR']:.2f} dB\nagainst the DRR, this view\n"
            "(phantom, not patient data)")
    row = MontageRow(f"knee radiograph from segmentation, phantom seed {KNEE_RADIOGRAPH_DEMO_SEED}", images=[
        (f"{condition.replace('_', '+')} segmentation (input)", read_segmentation_image(segmentation_path).image),
        ("generated radiograph", generated), ("DRR it should resemble", drr),
        ("|generated - DRR| x 4", np.clip(4 * np.abs(generated - drr), 0.0, 1.0))], note=note)
    return row, [segmentation_path, generated_path]


#: The demo's knee for the X-ray -> CT model: a seed outside the shipped model's training phantoms (300-399),
#: on their grid (96^3 voxels of 1.6 mm) and prepared as they were (64^3 CT cube, 128^2 DRRs).
KNEE_CT_DEMO_SEED = 7
KNEE_CT_DEMO_GRID = ((96, 96, 96), (1.6, 1.6, 1.6))
KNEE_CT_DEMO_CUBE = 64
#: CTs sampled for the knee's uncertainty row (their per-voxel mean is the CT shown, their std beside it).
KNEE_CT_DEMO_SAMPLES = 2


def _knee_ct_rows(bundle_dir: Path, out_dir: Path) -> tuple[list[MontageRow], list[Path]]:
    """Run the bundle's default inference on the AP + lateral DRRs of a fresh phantom knee; rows: truth,
    generated CT (the mean of ``KNEE_CT_DEMO_SAMPLES`` samples) with its bone Dice / ASSD after rigid
    registration, and the samples' per-voxel standard deviation."""
    parser = ConfigParser()
    parser.read_config(bundle_dir / "configs" / "inference.json")
    parser.read_meta(bundle_dir / "configs" / "metadata.json")
    knee = KneePhantom.from_seed(KNEE_CT_DEMO_SEED).render(*KNEE_CT_DEMO_GRID)
    name = f"knee_ct_{KNEE_CT_DEMO_SEED:04d}"
    source = write_case(knee.volume_hu, knee.labels, knee.affine, out_dir / "phantoms", name)
    prep = KneeCTPreparation(size=KNEE_CT_DEMO_CUBE, drr_size=int(parser["image_size"]))
    case = knee_ct_case(source.image, prep)
    h5 = write_x2ct_case(out_dir / "knee_ct" / f"{name}.h5", case)
    parser.update({"bundle_root": str(bundle_dir), "input_h5": str(h5), "output_dir": str(out_dir / "knee_ct"),
                   "data_label": "phantom", "device": "$torch.device('cpu')", "samples": KNEE_CT_DEMO_SAMPLES})
    inferer = parser.get_parsed_content("inferer")
    parser.get_parsed_content("evaluator").run()
    ct_path = out_dir / "knee_ct" / f"{name}_ct.nii.gz"
    generated = read_ct(ct_path)
    overlap = bone_overlap(generated, generated.affine.numpy(), case.ct_hu, case.affine)
    note = (f"{inferer.describe()}\n{parser.get_parsed_content('_meta_#orthogen_weights')} weights\n"
            f"bone Dice {overlap.dice:.3f}, ASSD {overlap.assd_mm:.2f} mm\nafter rigid registration, this knee\n"
            "(phantom, not patient data)")
    rows = [
        MontageRow(f"true CT, phantom knee seed {KNEE_CT_DEMO_SEED}", case.ct_hu, case.affine,
                   [("DRR AP (input)", case.ap), ("DRR lateral (input)", case.lateral)]),
        MontageRow(f"nested diffusion CT, {generated.shape[0]}^3", generated.numpy(), generated.affine.numpy(), [], note),
    ]
    std_path = out_dir / "knee_ct" / f"{name}_ct_std.nii.gz"
    std = read_ct(std_path).numpy()
    rows.append(MontageRow(f"std of {KNEE_CT_DEMO_SAMPLES} samples, HU", std, generated.affine.numpy(),
                           window_hu=(0.0, max(float(np.percentile(std, 99.5)), 1.0)),
                           note=f"per-voxel std of {KNEE_CT_DEMO_SAMPLES} CTs\n(seeds 0-{KNEE_CT_DEMO_SAMPLES - 1}), "
                                f"mean {float(std.mean()):.0f} HU"))
    return rows, [h5, ct_path, std_path]


def run_demo(out_dir: str | Path = "output/demo", seed: int = 0,
             bundle_dir: str | Path = "bundles/spine_x2ct_gan",
             knee_radiograph_bundle_dir: str | Path = "bundles/knee_radiograph_diffusion",
             knee_ct_bundle_dir: str | Path = "bundles/knee_xray2ct_diffusion") -> list[Path]:
    """Generate the demo outputs under ``out_dir`` and return their paths (the montage last)."""
    out_dir = Path(out_dir)
    knee = KneePhantom.from_seed(seed).render(shape=DEMO_SHAPE)
    spine = SpinePhantom.from_seed(seed).render(shape=DEMO_SHAPE)
    rows, paths = [], []
    for title, case, phantom in ((f"phantom knee, seed {seed}", f"knee_{seed:04d}", knee),
                                 (f"phantom lumbar spine, seed {seed}", f"spine_{seed:04d}", spine)):
        row, written = _phantom_row(title, case, phantom, out_dir)
        rows.append(row)
        paths += written
    rows += _knee_variety_rows()
    x2ct_rows, written = _x2ct_rows(Path(bundle_dir), out_dir)
    rows += x2ct_rows
    paths += written
    knee_row, written = _knee_radiograph_row(Path(knee_radiograph_bundle_dir), out_dir)
    rows.append(knee_row)
    paths += written
    knee_ct_rows, written = _knee_ct_rows(Path(knee_ct_bundle_dir), out_dir)
    rows += knee_ct_rows
    paths += written
    montage = write_montage(rows, out_dir / "montage.png",
                            "OrthoGen demo: procedural phantom CTs (not patient data), their DRRs, X2CT-GAN, "
                            "a knee radiograph from its segmentation, and a knee CT from two radiographs")
    return paths + [montage]

