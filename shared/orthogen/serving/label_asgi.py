"""The web app our MONAI Label server runs (``start_server --uvicorn_app orthogen.serving.label_asgi:app``): MONAI
Label's own FastAPI app, with its CORS limited to this server's origins and requests from any other browser
origin refused.

Why not MONAI Label's own setting: MONAI Label 0.8.5 builds its ``CORSMiddleware`` when ``monailabel.app`` is
imported, from ``settings.MONAI_LABEL_CORS_ORIGINS``, with ``allow_credentials=True``. An empty list (the default)
becomes ``["*"]``, and Starlette then answers every Origin by echoing it (``Access-Control-Allow-Origin: <that
origin>`` with ``Access-Control-Allow-Credentials: true``), preflights included. Setting the environment variable
does not work either: pydantic 2 keeps each origin as an ``AnyHttpUrl``, written with a trailing slash
(``http://127.0.0.1:8000/``), which never equals a browser's Origin (no own origin is ever allowed), and
``start_server`` then stops at start-up (``json.dumps`` of an ``AnyHttpUrl`` while it logs its settings). So this
module sets the setting to the exact origins before ``monailabel.app`` is imported.

CORS only decides whether a page of another origin may *read* an answer: a form POST (``/infer``, ``/train``)
from any web page the user opens still reaches the server. :class:`BrowserOriginGuard` therefore answers every
request that carries a foreign ``Origin`` header with 403 (one line) before MONAI Label sees it. Clients that are
not browsers (MONAILabelClient, curl, 3D Slicer) send no Origin and are not affected; OHIF, served by this
server, sends its own origin.

The allowed origins: ``ORTHOGEN_LABEL_ORIGINS`` (whitespace-separated, set by
:class:`orthogen.serving.label_server.LabelServer`), else http://127.0.0.1:<port> and http://localhost:<port>
of the server's port. A page is also let through when its Origin is the very host:port the request was sent to
(the ``Host`` header), e.g. OHIF opened through an SSH tunnel on another local port.
"""
from __future__ import annotations

import json
import os

from monailabel.config import settings

from orthogen.serving.label_server import ORIGINS_ENV, checked_origin, loopback_origins

__all__ = ["BrowserOriginGuard", "allowed_origins", "app"]


def allowed_origins(environ: dict[str, str] | None = None, port: int | None = None) -> list[str]:
    """The origins of ``ORTHOGEN_LABEL_ORIGINS`` in ``environ`` (default os.environ), else the loopback origins of
    ``port`` (default the server's, MONAI Label's ``MONAI_LABEL_SERVER_PORT``). Never empty, never ``*``."""
    environ = os.environ if environ is None else environ
    named = environ.get(ORIGINS_ENV, "").split()
    origins = [checked_origin(origin) for origin in named] or loopback_origins(
        settings.MONAI_LABEL_SERVER_PORT if port is None else port)
    return list(dict.fromkeys(origins))


class BrowserOriginGuard:
    """ASGI middleware: a request whose ``Origin`` header is neither one of ``origins`` nor the origin the request
    was sent to (its scheme and ``Host`` header) is answered 403 with a one-line JSON ``detail``; all other
    requests (and lifespan events) go to ``app`` unchanged."""

    def __init__(self, app, origins: list[str]):
        self.app, self.origins = app, [checked_origin(origin) for origin in origins]
        if not self.origins:
            raise ValueError("BrowserOriginGuard: no origin allowed; expected at least the server's own")

    def is_allowed(self, origin: str, scope: dict) -> bool:
        if origin in self.origins:
            return True
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        return bool(host) and origin == f"{scope.get('scheme', 'http')}://{host}"

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            origin = dict(scope.get("headers") or []).get(b"origin")
            if origin is not None and not self.is_allowed(origin.decode("latin-1"), scope):
                detail = (f"Origin {origin.decode('latin-1')}: requests from other web pages are refused; expected "
                          f"{' or '.join(self.origins)} (python -m orthogen.serving.label_server start --cors-origin)")
                body = json.dumps({"detail": detail}).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()), (b"vary", b"Origin")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


ORIGINS = allowed_origins()
# read by monailabel.app when it is imported (next line): exact strings, so Starlette compares them as they are
settings.MONAI_LABEL_CORS_ORIGINS = ORIGINS

from monailabel.app import app as monailabel_app  # noqa: E402  (after the setting it reads at import)

_cors = [m.kwargs.get("allow_origins") for m in monailabel_app.user_middleware if m.cls.__name__ == "CORSMiddleware"]
if _cors != [ORIGINS]:  # monailabel.app was imported before this module: its CORS would allow every origin
    raise RuntimeError(f"MONAI Label's CORS allows {_cors}, expected {ORIGINS}: import orthogen.serving.label_asgi "
                       f"before monailabel.app (start_server --uvicorn_app orthogen.serving.label_asgi:app)")

#: The app uvicorn serves.
app = BrowserOriginGuard(monailabel_app, ORIGINS)
