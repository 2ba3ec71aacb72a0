"""The app's DICOMweb datastore: every series of the server is an image, kept as DICOM (never converted to
NIfTI), and generated series are stored back into their study by STOW-RS.

MONAI Label's ``DICOMWebDatastore`` lists only CT series by default, converts each to NIfTI (losing a
radiograph's pixel spacing and its study), writes a download straight into its cache folder (a failed
download leaves a partial series there) and joins the image id to a cache path unchecked. Here an image id
must be a DICOM UID; a series is looked up by QIDO-RS first (an unknown UID is one line naming it), fetched
by WADO-RS into a temporary sibling folder and renamed into the cache, and handed to a bundle as its one
file (a DX / CR / SC radiograph) or as the folder (a CT series).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import pydicom
from dicomweb_client import DICOMwebClient
from monailabel.datastore.dicom import DICOMWebDatastore
from pydicom.dataset import Dataset

from orthogen.errors import InputError, OrthoGenError

logger = logging.getLogger(__name__)

#: A DICOM UID: dot-separated numbers, at most 64 characters (PS3.5 9.1).
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")


class StoreError(OrthoGenError):
    """The DICOMweb server did not take a generated series (STOW-RS failed)."""


@dataclass(frozen=True)
class SeriesInfo:
    """What QIDO-RS says of one series: its study, modality, description and number of instances."""

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    description: str
    instances: int


def checked_uid(value: object, field: str) -> str:
    """``value`` as a DICOM UID, or one InputError naming ``field`` (a path or anything else is refused)."""
    if not isinstance(value, str) or not value:
        raise InputError(f"missing; expected the SeriesInstanceUID of a series on the DICOMweb server, got "
                         f"{value!r}", field)
    if len(value) > 64 or not UID_PATTERN.fullmatch(value):
        raise InputError(f"{value[:80]!r} is not a DICOM UID; expected the SeriesInstanceUID of a series on "
                         "the DICOMweb server (digits and dots, at most 64 characters)", field)
    return value


def _text(dataset: Dataset, keyword: str) -> str:
    return str(dataset.get(keyword, "") or "")


class OrthoGenDICOMwebDatastore(DICOMWebDatastore):
    """A DICOMweb server (Orthanc, a PACS) as MONAI Label's datastore: series of every modality, as DICOM.

    Args:
        client: the server's DICOMweb client (MONAI Label's ``DICOMwebClientX`` with the configured prefixes).
        cache_path: where fetched series are kept (default MONAI Label's ~/.cache/monailabel/dicom/<hash>).
        search_filter: QIDO-RS filter of the series listed as images (default: every series).
    """

    def __init__(self, client: DICOMwebClient, cache_path: str | None = None, search_filter: dict | None = None):
        super().__init__(client=client, search_filter=search_filter or {}, cache_path=cache_path,
                         fetch_by_frame=False, convert_to_nifti=False)

    def find_series(self, series_uid: str) -> SeriesInfo | None:
        """QIDO-RS of one series; None when the server has no such series."""
        found = [Dataset.from_json(item) for item in
                 self._client.search_for_series(search_filters={"SeriesInstanceUID": series_uid})]
        found = [item for item in found if _text(item, "SeriesInstanceUID") == series_uid]
        if not found:
            return None
        series = found[0]
        return SeriesInfo(series_uid, _text(series, "StudyInstanceUID"), _text(series, "Modality"),
                          _text(series, "SeriesDescription"),
                          int(series.get("NumberOfSeriesRelatedInstances", 0) or 0))

    def series_info(self, series_uid: str, field: str = "image") -> SeriesInfo:
        """QIDO-RS of one series; InputError naming ``field`` when the server has no such series."""
        info = self.find_series(checked_uid(series_uid, field))
        if info is None:
            raise InputError(f"no series {series_uid} on the DICOMweb server {self._client.base_url}; expected "
                             "the SeriesInstanceUID of one of its series (GET /datastore/?output=all lists "
                             "them)", field)
        return info

    def get_image_uri(self, image_id: str, field: str = "image") -> str:
        """The series ``image_id`` on local disk: its one file when it has one instance (a radiograph), else
        its folder (a CT series). Fetched once, whole, into the cache; a cached series needs no QIDO-RS
        lookup (a request resolves its image more than once: the app, then MONAI Label's ``infer``)."""
        folder = Path(self._datastore.image_path()) / checked_uid(image_id, field)
        if not folder.is_dir() or not any(folder.iterdir()):
            self._download(self.series_info(image_id, field), folder)
        files = sorted(folder.glob("*.dcm"))
        return str(files[0]) if len(files) == 1 else str(folder)

    def _download(self, info: SeriesInfo, folder: Path) -> None:
        """WADO-RS the series into a temporary sibling folder, then rename it into place."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for instance in self._client.retrieve_series(info.study_instance_uid, info.series_instance_uid):
                instance.save_as(partial / f"{_text(instance, 'SOPInstanceUID')}.dcm", write_like_original=False)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        logger.info(f"fetched series {info.series_instance_uid} ({info.modality}) into {folder}")

    def store_series(self, files: list[Path], study_uid: str, relabel: Callable[[list[Dataset]], None] | None = None
                     ) -> dict[str, object]:
        """STOW-RS ``files`` (one new series, already tagged with ``study_uid``) into that study, after
        ``relabel`` (if given) changed the datasets in place (series UID, description).

        The files are checked first (one series, of that study), so nothing of a wrong series is sent.
        Returns StudyInstanceUID, SeriesInstanceUID, Modality, SeriesDescription and the instance count."""
        datasets = [pydicom.dcmread(path) for path in files]
        if relabel is not None:
            relabel(datasets)
        series = {_text(item, "SeriesInstanceUID") for item in datasets}
        studies = {_text(item, "StudyInstanceUID") for item in datasets}
        if len(series) != 1 or studies != {study_uid}:
            raise StoreError(f"expected the files of one series of study {study_uid}, got series {sorted(series)} "
                             f"of studies {sorted(studies)}")
        try:
            self._client.store_instances(datasets, study_instance_uid=study_uid)
        except Exception as exc:  # requests' HTTPError, ConnectionError, ...
            raise StoreError(f"the DICOMweb server {self._client.base_url} did not store the generated series "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        first = datasets[0]
        DICOMWebDatastore.list_images.cache_clear()  # the new series is listed at once, not after the TTL
        return {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series.pop(),
                "Modality": _text(first, "Modality"), "SeriesDescription": _text(first, "SeriesDescription"),
                "instances": len(datasets)}
