"""Writing generated radiographs: SaveGeneratedRadiographd (PNG mean, samples, std) and write_dicom_radiograph."""
from __future__ import annotations

import json
import logging

import numpy as np
import pydicom
import pytest
import torch
from monai.data import decollate_batch, list_data_collate
from PIL import Image
from pydicom.dataset import Dataset

from orthogen.outputs.radiograph_prediction_writer import SaveGeneratedRadiographd
from orthogen.data.segmentation_input import LoadSegmentationd
from orthogen.errors import InputError
from orthogen.io import read_radiograph, write_dicom_radiograph, write_png

from test_segmentation_input import SIZE, dicom_image, levels


def png_values(path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture, dtype=np.float64) / 65535.0


def item(segmentation_path, samples: np.ndarray) -> dict:
    """A decollated inference item, as the bundle's postprocessing sees it (through collation and back)."""
    loaded = LoadSegmentationd(spatial_size=SIZE)({"image": str(segmentation_path)})
    batch = list_data_collate([loaded])
    batch["pred"] = torch.as_tensor(samples, dtype=torch.float32)[None]
    return decollate_batch(batch)[0]


def samples(k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (k, *SIZE)).astype(np.float32)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob(".tmp-*"))


def test_one_sample_writes_the_png_only(tmp_path):
    segmentation = write_png(levels(), tmp_path / "in" / "knee_seg.png")
    pred = samples(1)
    SaveGeneratedRadiographd(tmp_path / "out")(item(segmentation, pred))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["knee_seg_radiograph.png"]
    np.testing.assert_allclose(png_values(tmp_path / "out" / "knee_seg_radiograph.png"), pred[0], atol=1 / 65535)


def test_k_samples_write_mean_samples_and_std(tmp_path, caplog):
    segmentation = write_png(levels(), tmp_path / "knee.png")
    pred = samples(4)
    with caplog.at_level(logging.INFO, logger="orthogen.outputs.radiograph_prediction_writer"):
        SaveGeneratedRadiographd(tmp_path / "out")(item(segmentation, pred))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["knee_radiograph.png", "knee_samples.npy", "knee_std.npy",
                                                     "knee_std.png"]
    mean, std = pred.astype(np.float64).mean(axis=0), pred.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(png_values(out / "knee_radiograph.png"), mean, atol=1 / 65535)
    np.testing.assert_array_equal(np.load(out / "knee_samples.npy"), pred)
    np.testing.assert_allclose(np.load(out / "knee_std.npy"), std, atol=1e-6)
    np.testing.assert_allclose(png_values(out / "knee_std.png"), std, atol=1 / 65535)
    assert sum("wrote" in r.getMessage() for r in caplog.records) == 4

    same = np.repeat(pred[:1], 3, axis=0)
    SaveGeneratedRadiographd(tmp_path / "same")(item(segmentation, same))
    assert np.all(np.load(tmp_path / "same" / "knee_std.npy") == 0)
    assert np.all(png_values(tmp_path / "same" / "knee_std.png") == 0)


def test_dicom_joins_the_segmentations_study(tmp_path):
    segmentation = dicom_image(tmp_path / "knee_seg.dcm", np.rint(levels() * 2), PixelSpacing=[0.3, 0.35],
                               StudyDescription="Knee", AccessionNumber="A123", Laterality="L")
    reference = pydicom.dcmread(segmentation)
    pred = samples(2)
    SaveGeneratedRadiographd(tmp_path / "out", output_format="dicom", method_description="CTM, PC sampler, 1000 NFE"
                             )(item(segmentation, pred))
    written = tmp_path / "out" / "knee_seg_radiograph.dcm"
    ds = pydicom.dcmread(written)
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and ds.Modality == "OT"
    assert ds.StudyInstanceUID == reference.StudyInstanceUID
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber, ds.StudyDescription, ds.Laterality) == \
        ("KNEE01", "Knee^Test", "A123", "Knee", "L")
    assert ds.SeriesInstanceUID != reference.SeriesInstanceUID and ds.SOPInstanceUID != reference.SOPInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == reference.SOPInstanceUID
    assert [float(v) for v in ds.PixelSpacing] == [0.3, 0.35] and "ImagerPixelSpacing" not in ds  # at the patient
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "NO"
    assert ds.ConversionType == "SYN"
    assert "CTM, PC sampler, 1000 NFE" in ds.DerivationDescription and "mean of 2 samples" in ds.DerivationDescription
    assert ds.SeriesDescription == "Knee radiograph diffusion synthetic radiograph (phantom-trained)"
    np.testing.assert_allclose(ds.pixel_array / 65535.0, pred.astype(np.float64).mean(axis=0), atol=1 / 65535)
    assert read_radiograph(written).spacing_source == "PixelSpacing"


def test_dicom_spacing_at_the_detector_and_none(tmp_path, caplog):
    np.save(tmp_path / "drr_seg.npy", levels())
    (tmp_path / "drr_seg.json").write_text(json.dumps({"pixel_spacing_mm": [0.5, 0.5]}))
    SaveGeneratedRadiographd(tmp_path / "out", output_format="dicom")(item(tmp_path / "drr_seg.npy", samples(1)))
    ds = pydicom.dcmread(tmp_path / "out" / "drr_seg_radiograph.dcm")
    assert [float(v) for v in ds.PixelSpacing] == [float(v) for v in ds.ImagerPixelSpacing] == [0.5, 0.5]
    assert ds.PatientID == "ORTHOGEN"  # a new study: the segmentation was not DICOM

    segmentation = write_png(levels(), tmp_path / "plain.png")
    with caplog.at_level(logging.WARNING, logger="orthogen.outputs.radiograph_prediction_writer"):
        SaveGeneratedRadiographd(tmp_path / "out", output_format="dicom")(item(segmentation, samples(1)))
    ds = pydicom.dcmread(tmp_path / "out" / "plain_radiograph.dcm")
    assert "PixelSpacing" not in ds and "ImagerPixelSpacing" not in ds
    assert any("no pixel spacing" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_bad_predictions_are_refused_before_anything_is_written(tmp_path):
    segmentation = write_png(levels(), tmp_path / "knee.png")
    writer = SaveGeneratedRadiographd(tmp_path / "out", output_format="dicom")
    nan = samples(2)
    nan[1, 0, 0] = np.nan
    for bad, phrase in ((nan, "NaN"), (samples(2) * 1.5, "expected values in [0, 1]"), (samples(2) - 0.5, "[0, 1]")):
        with pytest.raises(InputError) as error:
            writer(item(segmentation, bad))
        assert str(error.value).startswith("pred: ") and phrase in str(error.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="^output_format: expected one of png, dicom"):
        SaveGeneratedRadiographd(tmp_path / "out", output_format="nifti")


def test_write_dicom_radiograph_is_atomic(tmp_path, monkeypatch):
    image = samples(1)[0]
    uid = write_dicom_radiograph(image, tmp_path / "x.dcm", pixel_spacing_mm=(0.4, 0.4), spacing_at_detector=False)
    assert pydicom.dcmread(tmp_path / "x.dcm").SOPInstanceUID == uid
    for bad, spacing, phrase in ((np.zeros((2, *SIZE)), None, "^image: expected a 2D"),
                                 (image + 1, None, r"^image: expected values in \[0, 1\]"),
                                 (image, (0, 1), "^pixel_spacing_mm: ")):
        with pytest.raises(InputError, match=phrase):
            write_dicom_radiograph(bad, tmp_path / "bad.dcm", pixel_spacing_mm=spacing)
    with pytest.raises(InputError, match="expected a .dcm file name"):
        write_dicom_radiograph(image, tmp_path / "x.png")
    with pytest.raises(InputError, match="has no StudyInstanceUID"):
        write_dicom_radiograph(image, tmp_path / "bad.dcm", reference=Dataset())

    def half_written(self, filename, *args, **kwargs):
        with open(filename, "wb") as stream:
            stream.write(b"DICM half")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_radiograph(image, tmp_path / "bad.dcm")
    with pytest.raises(OSError, match="disk full"):
        SaveGeneratedRadiographd(tmp_path / "out", output_format="dicom")(item(write_png(levels(), tmp_path / "k.png"),
                                                                               samples(2)))
    assert not (tmp_path / "bad.dcm").exists() and not (tmp_path / "out" / "k_radiograph.dcm").exists()
    assert leftovers(tmp_path) == []
