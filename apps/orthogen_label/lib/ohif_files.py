"""Serving MONAI Label's OHIF build at /ohif/ correctly: files in subfolders too, the viewer's own routes as
index.html, nothing outside the build.

MONAI Label 0.8.5's own route (``monailabel.endpoints.ohif``) joins the request path with
``path.replace("/", os.pathsep)``: on Linux ``assets/x.js`` becomes ``assets:x.js``, which never exists, so
every file in a subfolder (assets/, dicom-microscopy-viewer/) is answered with index.html and OHIF fails to
load them. The route here is put in front of that one when the app starts (:func:`install_ohif_route`).
"""
from __future__ import annotations

from pathlib import Path

import monailabel.endpoints.ohif as monailabel_ohif
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from monailabel.utils.others.generic import get_mime_type

#: MONAI Label's OHIF 3 build.
OHIF_DIR = Path(monailabel_ohif.__file__).resolve().parent / "static" / "ohif"
ROUTE = "/ohif/{path:path}"


def ohif_file(path: str, root: Path = OHIF_DIR) -> Path:
    """The build's file for a request path below /ohif/: the file itself when it is there; index.html for
    the viewer's routes (``viewer``, ``viewer/dicomweb``: no suffix); else HTTP 404 (a missing asset, or
    a path out of the build such as ``../../config.py``)."""
    root = root.resolve()
    file = (root / path).resolve() if path else root / "index.html"
    if not file.is_relative_to(root):
        raise HTTPException(status_code=404, detail=f"ohif/{path}: not a file of the OHIF viewer")
    if file.is_file():
        return file
    if not Path(path).suffix:
        return root / "index.html"
    raise HTTPException(status_code=404, detail=f"ohif/{path}: no such file in the OHIF viewer")


async def get_ohif_file(path: str) -> FileResponse:
    file = ohif_file(path)
    return FileResponse(file, media_type=get_mime_type(str(file)))


def install_ohif_route(server: FastAPI, prefix: str = "") -> None:
    """Put the /ohif/ route first in ``server``'s routes (once), ahead of MONAI Label's."""
    path = prefix + ROUTE
    if any(isinstance(route, APIRoute) and route.endpoint is get_ohif_file for route in server.router.routes):
        return
    server.router.routes.insert(0, APIRoute(path, get_ohif_file, methods=["GET"], include_in_schema=False))
