"""A request's images found in the datastore: the files a bundle's inference reads, as its config overrides.

X-ray -> CT: the request's ``image`` is the AP radiograph, param ``lateral`` the lateral one (both datastore
ids). Segmentation -> radiograph: the segmentation is an uploaded label file (MONAI Label passes its path as
``label``) or the image's datastore label with tag ``label_tag``; on a DICOMweb datastore it is the image
series itself (a DICOM SEG drawn on a radiograph of the study, segments "contour" and "bone", which the
bundle's reader takes as it is; or a DICOM segmentation image). Each missing or unknown id is one InputError
naming the field and the id.

Ids are ids, never paths: a local datastore's ids are file names without folders, a DICOMweb one's are
SeriesInstanceUIDs. The one path accepted is the temporary file MONAI Label writes for an upload (a
``tmp*`` file directly in the system temporary folder), so ``../../etc/passwd`` or an absolute path named
in the request's params is refused, not read.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from monailabel.interfaces.datastore import Datastore

from lib.bundle_catalogue import SEGMENTATION_TO_RADIOGRAPH, XRAY_TO_CT, BundleModel
from lib.dicomweb_datastore import OrthoGenDICOMwebDatastore
from lib.request_schema import DEFAULT_LABEL_TAG

from orthogen.errors import InputError


def is_uploaded_file(path: str) -> bool:
    """Whether ``path`` is where MONAI Label's /infer keeps an uploaded file (``tempfile.NamedTemporaryFile``)."""
    file = Path(path)
    return file.is_file() and file.name.startswith("tmp") and file.parent.resolve() == Path(tempfile.gettempdir()).resolve()


def image_file(datastore: Datastore, image: str, field: str) -> str:
    """The local file of datastore image ``image`` (MONAI Label's temporary file of an upload is taken as it
    is); a DICOMweb series is fetched."""
    if not isinstance(image, str) or not image:
        raise InputError(f"missing; expected the datastore id of an image, got {image!r}", field)
    if isinstance(datastore, OrthoGenDICOMwebDatastore) and not is_uploaded_file(image):
        return datastore.get_image_uri(image, field)
    if os.path.exists(image):
        if not is_uploaded_file(image):
            raise InputError(f"{image[:120]!r} is a path on the server, not a datastore id; expected the id of "
                             "an image in the datastore (GET /datastore/?output=all lists them) or an upload",
                             field)
        return image
    if os.path.basename(image) != image or image in (".", "..") or "\\" in image:
        raise InputError(f"{image[:120]!r} is not a datastore id (ids are file names without folders); expected "
                         "the id of an image in the datastore", field)
    uri = datastore.get_image_uri(image)
    if not uri or not os.path.exists(uri):
        raise InputError(f"no image {image!r} in the datastore; expected one of its image ids "
                         "(GET /datastore/?output=all lists them)", field)
    return uri


def segmentation_file(datastore: Datastore, request: dict) -> str:
    """The segmentation of the request: the uploaded label, else the image's datastore label."""
    uploaded = request.get("label")
    if isinstance(uploaded, str) and uploaded:
        if not is_uploaded_file(uploaded):
            raise InputError(f"{uploaded[:120]!r} is not an uploaded file; expected the segmentation uploaded "
                             "with the request (form field label)", "label")
        return uploaded
    if isinstance(datastore, OrthoGenDICOMwebDatastore):  # the image series is the segmentation
        return image_file(datastore, request.get("image"), "image")
    image, tag = request.get("image"), request.get("label_tag") or DEFAULT_LABEL_TAG
    image_file(datastore, image, "image")
    label_id = datastore.get_label_by_image_id(image, tag) if not os.path.exists(image) else ""
    uri = datastore.get_label_uri(label_id, tag) if label_id else ""
    if not uri or not os.path.exists(uri):
        raise InputError(f"image {image!r} has no label with tag {tag!r} in the datastore; expected its "
                         "segmentation there (PUT /datastore/label) or an uploaded label file", "label")
    return uri


def bundle_inputs(model: BundleModel, request: dict, datastore: Datastore) -> dict[str, str]:
    """The config overrides naming the input files of ``model``'s bundle for this request."""
    if model.kind == XRAY_TO_CT:
        if request.get("lateral") in (None, ""):
            raise InputError("missing; expected the datastore id of the lateral radiograph in the request's "
                             "params (the request's image is the AP one)", "lateral")
        if request["lateral"] == request.get("image"):
            raise InputError(f"the same image as the AP one ({request['lateral']!r}); expected the lateral view",
                             "lateral")
        return {"input_ap": image_file(datastore, request.get("image"), "image"),
                "input_lateral": image_file(datastore, request["lateral"], "lateral")}
    if model.kind == SEGMENTATION_TO_RADIOGRAPH:
        return {"input_segmentation": segmentation_file(datastore, request)}
    raise InputError(f"model {model.name} has no runnable bundle ({model.unavailable_reason()})", "model")


def input_study(model: BundleModel, request: dict, datastore: OrthoGenDICOMwebDatastore) -> str:
    """The StudyInstanceUID that a DICOMweb request's inputs share, which its result joins: the AP and the
    lateral series must be of one study (else InputError naming ``lateral``)."""
    study = datastore.series_info(request.get("image"), "image").study_instance_uid
    if model.kind == XRAY_TO_CT:
        lateral = datastore.series_info(request.get("lateral"), "lateral").study_instance_uid
        if lateral != study:
            raise InputError(f"series {request['lateral']} is of study {lateral}, the AP view (image) of study "
                             f"{study}; expected the two views of one study", "lateral")
    return study
