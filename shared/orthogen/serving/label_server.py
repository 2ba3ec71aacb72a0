"""Our MONAI Label server: ``apps/orthogen_label`` run by ``python -m monailabel.main start_server`` with the
offline options (../shared/STACK.md), bound to 127.0.0.1, as a child process with its pid file, log,
DICOMweb cache and sessions in a folder of ours, stopped by that pid.

The venv's own interpreter runs it (not the ``monailabel`` launcher, which runs the first ``python`` on
PATH), with the venv's bin/ first on PATH so that dcmqi's ``itkimage2segimage`` (the ``dcmqi`` wheel) is
found and nothing is downloaded at start-up.

Browsers: the server runs :mod:`orthogen.serving.label_asgi` (``--uvicorn_app``), MONAI Label's app with CORS
limited to the server's own origins (http://127.0.0.1:<port>, http://localhost:<port>, plus any ``--cors-origin``)
and a request from any other web page's origin refused with 403; MONAI Label's own default allows every origin
with credentials.

Command line (``make serve`` / ``make stop``)::

    python -m orthogen.serving.label_server start --folder output/label_server \\
        --studies http://127.0.0.1:8042/dicom-web [--port 8000] [--conf key value ...] [--cors-origin URL ...]
    python -m orthogen.serving.label_server stop --folder output/label_server
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orthogen.serving.server_process import ServerFiles, ServerProcess, ServerProcessError, port_is_free

__all__ = ["APP_DIR", "ASGI_APP", "DEFAULT_PORT", "ORIGINS_ENV", "LabelServer", "LabelServerError", "checked_origin",
           "label_server_command", "loopback_origins", "stop_from_pidfile"]

#: The repository's app (shared/orthogen/serving -> apps/orthogen_label).
APP_DIR = Path(__file__).resolve().parents[3] / "apps" / "orthogen_label"
DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"
#: App conf that keeps MONAI Label off the internet (STACK.md): any zoo source but its default; no trainers.
OFFLINE_CONF = {"zoo_source": "github"}
#: The app conf key whose value, our folder, marks the command line as ours.
FOLDER_CONF = "orthogen_server_folder"
#: The web app uvicorn serves: MONAI Label's, with CORS limited to our origins (orthogen.serving.label_asgi).
ASGI_APP = "orthogen.serving.label_asgi:app"
#: The environment variable naming the browser origins label_asgi allows (whitespace-separated).
ORIGINS_ENV = "ORTHOGEN_LABEL_ORIGINS"


def loopback_origins(port: int) -> list[str]:
    """The origins a user types for a server on 127.0.0.1:``port``."""
    return [f"http://127.0.0.1:{int(port)}", f"http://localhost:{int(port)}"]


def checked_origin(origin: str) -> str:
    """``origin`` as a browser writes it (``scheme://host[:port]``, no trailing slash); ValueError otherwise
    (``*``, ``null``, a path)."""
    value = origin.strip().rstrip("/")
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or any(c in rest for c in "/?#*@ "):
        raise ValueError(f"CORS origin {origin!r}: expected scheme://host[:port], e.g. http://127.0.0.1:8000 "
                         f"(no path, no wildcard)")
    return value


class LabelServerError(ServerProcessError):
    """The MONAI Label server cannot be started or stopped (one line, with its log's tail where one exists)."""


def server_files(folder: str | Path) -> ServerFiles:
    """label_server.pid and label_server.log in ``folder``; ours when its command line names ``folder``."""
    folder = Path(folder).resolve()
    return ServerFiles(folder, "label_server", str(folder))


def label_server_command(folder: Path, studies: str, port: int, conf: dict[str, str], host: str = LOOPBACK,
                         app_dir: Path = APP_DIR, python: str = sys.executable) -> list[str]:
    """The start_server command line of the app on ``studies`` (a folder or a DICOMweb URL)."""
    command = [python, "-m", "monailabel.main", "start_server", "--app", str(app_dir), "--studies", studies,
               "--host", host, "--port", str(port), "--uvicorn_app", ASGI_APP]
    for key, value in {**OFFLINE_CONF, **conf, FOLDER_CONF: str(folder)}.items():
        command += ["--conf", key, str(value)]
    return command


class LabelServer:
    """One MONAI Label server of the app on ``studies`` at http://127.0.0.1:``port``.

    Args:
        folder: our folder for the pid file, log, DICOMweb cache (``dicom_cache/``), sessions and the train
            tasks' fine-tuned weights (``finetuned/``, unless ``conf`` names another ``finetuned_dir``).
        studies: a datastore folder, or a DICOMweb root such as http://127.0.0.1:8042/dicom-web.
        port: the HTTP port (bound on 127.0.0.1 only).
        conf: more app conf (``--conf key value``), e.g. ``{"bundles": "/path/to/bundles"}``.
        startup_timeout_s: how long :meth:`start` waits for ``GET /info/`` (the app loads every bundle's
            configs at start-up: ~15-30 s on 2 CPU cores).
        env: extra environment variables for the server (e.g. ``MONAI_LABEL_INFER_CONCURRENCY``).
        cors_origins: more browser origins allowed besides the server's own (http://127.0.0.1:``port`` and
            http://localhost:``port``), e.g. a reverse proxy's ``https://label.example.org``.

    Raises:
        LabelServerError: a ``cors_origins`` entry is not ``scheme://host[:port]`` (``*`` is refused).
    """

    def __init__(self, folder: str | Path, studies: str, port: int = DEFAULT_PORT,
                 conf: dict[str, str] | None = None, startup_timeout_s: float = 120.0,
                 env: dict[str, str] | None = None, cors_origins: list[str] | tuple[str, ...] = ()):
        self.folder = Path(folder).resolve()
        self.studies, self.port = str(studies), int(port)
        self.conf, self.startup_timeout_s, self.extra_env = dict(conf or {}), float(startup_timeout_s), dict(env or {})
        try:
            extra = [checked_origin(origin) for origin in cors_origins]
        except ValueError as error:
            raise LabelServerError(str(error)) from None
        self.cors_origins = list(dict.fromkeys(loopback_origins(self.port) + extra))
        self.files = server_files(self.folder)
        self._process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        return self.files.log_path

    def environment(self) -> dict[str, str]:
        """Ours, with the venv's bin/ first on PATH and MONAI Label's caches and sessions in our folder."""
        bin_dir = str(Path(sys.executable).parent)
        environment = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
                       "MONAI_LABEL_DICOMWEB_CACHE_PATH": str(self.folder / "dicom_cache"),
                       "MONAI_LABEL_SESSION_PATH": str(self.folder / "sessions"),
                       "MONAI_LABEL_TRACKING_ENABLED": "false", **self.extra_env,
                       ORIGINS_ENV: " ".join(self.cors_origins)}
        # MONAI Label's own CORS variable is replaced by ours (orthogen.serving.label_asgi); set, it stops start_server
        environment.pop("MONAI_LABEL_CORS_ORIGINS", None)
        return environment

    def start(self) -> LabelServer:
        """Start the server and wait until ``GET /info/`` answers.

        Raises:
            LabelServerError: one of ours already runs on this folder; the port is taken; the server exits
                or does not answer within ``startup_timeout_s`` (quoting the end of its log). A process that
                started is stopped before the error is raised.
        """
        running = self.files.running_pid()
        if running is not None:
            raise LabelServerError(f"{self.folder}: a MONAI Label server of ours already runs here (pid {running}); "
                                   f"stop it with `python -m orthogen.serving.label_server stop --folder {self.folder}`")
        if not port_is_free(self.port, LOOPBACK):
            raise LabelServerError(f"port {self.port} is in use; expected a free port for the MONAI Label server")
        conf = {"finetuned_dir": str(self.folder / "finetuned"), **self.conf}  # fine-tuned weights: ours, not the repo's
        command = label_server_command(self.folder, self.studies, self.port, conf)
        self._process = ServerProcess(self.files, command, f"{self.url}/info/", "MONAI Label",
                                      env=self.environment(), startup_timeout_s=self.startup_timeout_s)
        try:
            self._process.start()
        except ServerProcessError as error:
            raise LabelServerError(str(error)) from None
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout_s)

    def __enter__(self) -> LabelServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def stop_from_pidfile(folder: str | Path, timeout_s: float = 20.0) -> int | None:
    """Stop the server of ours whose pid is in ``folder``/label_server.pid; the stopped pid, or None."""
    return server_files(folder).stop_running(timeout_s)


def main(argv: list[str] | None = None) -> int:
    """``start`` / ``stop`` our MONAI Label server; errors are one line on stderr, status 1."""
    parser = argparse.ArgumentParser(prog="python -m orthogen.serving.label_server",
                                     description="Start or stop OrthoGen's MONAI Label server (127.0.0.1).")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--folder", default="output/label_server", help="pid file, log, DICOMweb cache")
    parser.add_argument("--studies", default="http://127.0.0.1:8042/dicom-web",
                        help="a datastore folder or a DICOMweb root (default: our Orthanc)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="app conf, e.g. --conf bundles /path/to/bundles")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                        help="a browser origin allowed besides http://127.0.0.1:PORT and http://localhost:PORT "
                             "(e.g. a reverse proxy's https://label.example.org); repeatable")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            files = server_files(args.folder)
            running = files.running_pid()
            if running is not None:
                print(f"MONAI Label server already running (pid {running}); log {files.log_path}")
                return 0
            server = LabelServer(args.folder, args.studies, args.port, dict(args.conf),
                                 cors_origins=args.cors_origin).start()
            print(f"MONAI Label server (pid {server.pid}) on {server.url} over {server.studies}; "
                  f"OHIF at {server.url}/ohif/; browser origins {' '.join(server.cors_origins)}; log {server.log_path}")
        else:
            pid = stop_from_pidfile(args.folder)
            print(f"stopped MONAI Label server pid {pid}" if pid else f"no MONAI Label server of ours on {args.folder}")
    except LabelServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
