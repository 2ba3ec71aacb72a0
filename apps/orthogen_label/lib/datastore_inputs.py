"""A request's images found in the datastore: the files a bundle's inference reads, as its config overrides.

X-ray -> CT: the request's ``image`` is the AP radiograph, param ``lateral`` the lateral one (both datastore
ids). Segmentation -> radiograph: the segmentation is an uploaded label file (MONAI Label passes its path as
``label``) or the image's datastore label with tag ``label_tag``. Each missing or unknown id is one
InputError naming the field and the id.
"""
from __future__ import annotations

import os

from monailabel.interfaces.datastore import Datastore

from lib.bundle_catalogue import SEGMENTATION_TO_RADIOGRAPH, XRAY_TO_CT, BundleModel
from lib.request_schema import DEFAULT_LABEL_TAG

from orthogen.errors import InputError


def image_file(datastore: Datastore, image: str, field: str) -> str:
    """The local file of datastore image ``image`` (an existing path is taken as it is, as MONAI Label does
    for uploaded files)."""
    if not isinstance(image, str) or not image:
        raise InputError(f"missing; expected the datastore id of an image, got {image!r}", field)
    if os.path.exists(image):
        return image
    uri = datastore.get_image_uri(image)
    if not uri or not os.path.exists(uri):
        raise InputError(f"no image {image!r} in the datastore; expected one of its image ids "
                         "(GET /datastore/?output=all lists them)", field)
    return uri


def segmentation_file(datastore: Datastore, request: dict) -> str:
    """The segmentation of the request: the uploaded label, else the image's datastore label."""
    uploaded = request.get("label")
    if isinstance(uploaded, str) and uploaded:
        if not os.path.isfile(uploaded):
            raise InputError(f"no such file {uploaded!r}; expected an uploaded segmentation", "label")
        return uploaded
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
