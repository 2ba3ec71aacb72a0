"""The OHIF viewer at /ohif/: OHIF 3.13.2 as ``make serve-deps`` installed it (``orthogen.serving.ohif_viewer``),
with our ``app-config.js`` and the OrthoGen mode / extension (``apps/orthogen_label/ohif/``) in front of it.

Files as they are; the viewer's own routes (``/ohif/orthogen?StudyInstanceUIDs=...``: no suffix) as
index.html; a missing asset or a path out of the folders 404; no viewer installed: 503 saying how to
install it. The route is put first in the server's routes when the app starts (:func:`install_ohif_route`),
ahead of MONAI Label's own /ohif/ (its bundled OHIF 3.10, which cannot start a generation model, is never
served).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from monailabel.utils.others.generic import get_mime_type

from orthogen.serving.ohif_viewer import DEFAULT_DEST, OHIF_VERSION, installed

#: Our files: app-config.js at the viewer's root, the mode and extension under /ohif/orthogen/.
OUR_DIR = Path(__file__).resolve().parents[1] / "ohif"
OUR_ROOT_FILES = ("app-config.js",)
OUR_PREFIX = "orthogen/"
ROUTE = "/ohif/{path:path}"


def ohif_file(path: str, viewer: Path = DEFAULT_DEST, ours: Path = OUR_DIR) -> Path:
    """The file for a request path below /ohif/ (see the module docstring)."""
    if path in OUR_ROOT_FILES:
        return ours / path
    if path.startswith(OUR_PREFIX) and Path(path).suffix:
        root, relative = ours.resolve(), path[len(OUR_PREFIX):]
    else:
        if not installed(viewer):
            raise HTTPException(status_code=503, detail=f"ohif/{path}: the OHIF {OHIF_VERSION} viewer is not installed "
                                                        f"in {viewer}; run `make serve-deps`")
        root, relative = viewer.resolve(), path
    file = (root / relative).resolve() if relative else root / "index.html"
    if not file.is_relative_to(root):
        raise HTTPException(status_code=404, detail=f"ohif/{path}: not a file of the OHIF viewer")
    if file.is_file():
        return file
    if not Path(path).suffix:
        return viewer.resolve() / "index.html"
    raise HTTPException(status_code=404, detail=f"ohif/{path}: no such file in the OHIF viewer")


async def get_ohif_file(path: str) -> FileResponse:
    file = ohif_file(path)
    media_type = "text/javascript" if file.suffix in (".js", ".mjs") else get_mime_type(str(file))
    # our files change with the repository: never cached by the browser; the build's are content-hashed
    headers = {"Cache-Control": "no-cache"} if file.is_relative_to(OUR_DIR.resolve()) or file.name == "index.html" else {}
    return FileResponse(file, media_type=media_type, headers=headers)


def install_ohif_route(server: FastAPI, prefix: str = "") -> None:
    """Put the /ohif/ route first in ``server``'s routes (once), ahead of MONAI Label's."""
    path = prefix + ROUTE
    if any(isinstance(route, APIRoute) and route.endpoint is get_ohif_file for route in server.router.routes):
        return
    server.router.routes.insert(0, APIRoute(path, get_ohif_file, methods=["GET"], include_in_schema=False))
