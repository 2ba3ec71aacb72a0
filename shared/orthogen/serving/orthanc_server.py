"""Our own Orthanc: a JSON config in a folder of ours, the Debian ``Orthanc`` binary as a child process with
its pid in a file there, the DICOMweb plugin on ``/dicom-web/``, stopped by that pid.

The folder holds ``orthanc.json`` (the config), ``orthanc.pid``, ``orthanc.log`` (the binary's stdout and
stderr) and ``storage/`` (the DICOM files and the SQLite index), so the data outlives the process and a
later server on the same folder serves the same studies.

Orthanc 1.10 has no bind-address option: its HTTP server listens on every interface. The config sets
``RemoteAccessAllowed`` false, so Orthanc answers only clients on 127.0.0.1 (and refuses the others), and
its DICOM (DIMSE) server is off unless a DICOM port is asked for; MONAI Label and OHIF use DICOMweb only.

Command line (``make orthanc`` / ``make stop``)::

    python -m orthogen.serving.orthanc_server start --folder output/orthanc [--http-port 8042]
    python -m orthogen.serving.orthanc_server stop --folder output/orthanc
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import requests

from orthogen.serving.server_process import ServerFiles, ServerProcess, ServerProcessError, port_is_free

__all__ = ["DICOMWEB_PLUGIN", "INSTALL_HINT", "OrthancError", "OrthancServer", "find_orthanc_binary",
           "orthanc_config", "running_pid", "stop_from_pidfile"]

#: The Debian package orthanc-dicomweb's plugin (DICOMweb 1.7 with orthanc 1.10.1 on bookworm).
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL_HINT = ("run scripts/install_serving_deps.sh (as root it installs the Debian packages orthanc and "
                "orthanc-dicomweb; otherwise it says what to install)")
CONFIG_NAME, STORAGE_NAME = "orthanc.json", "storage"
DEFAULT_HTTP_PORT = 8042
LOOPBACK = "127.0.0.1"


class OrthancError(ServerProcessError):
    """Orthanc cannot be started or stopped; the message is one line (with the log's tail where one exists)."""


def find_orthanc_binary() -> Path | None:
    """The ``Orthanc`` executable: on PATH, else Debian's /usr/sbin/Orthanc (not on every user's PATH)."""
    found = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
    return None if found is None else Path(found)


def orthanc_config(folder: Path, http_port: int, dicom_port: int | None) -> dict:
    """The Orthanc configuration (JSON object) of a server keeping its data in ``folder``/storage.

    ``dicom_port`` None turns the DICOM (DIMSE) server off; a port turns it on (AE title ORTHOGEN).
    """
    storage = str(Path(folder).resolve() / STORAGE_NAME)
    config = {
        "Name": "OrthoGen",
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "HttpPort": int(http_port),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": dicom_port is not None,
        "DicomAet": "ORTHOGEN",
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "ExecuteLuaEnabled": False,
        "RestApiWriteToFileSystemEnabled": False,
        "SaveJobs": False,
    }
    if dicom_port is not None:
        config["DicomPort"] = int(dicom_port)
    return config


class OrthancServer:
    """One Orthanc process serving the studies in ``folder`` on http://127.0.0.1:``http_port``.

    Args:
        folder: our folder for the config, pid file, log and ``storage/`` (created when missing).
        http_port: the REST / DICOMweb port (Orthanc binds it on every interface; only loopback clients
            are answered).
        dicom_port: a DICOM (DIMSE) port, or None (default) for no DICOM server.
        startup_timeout_s: how long :meth:`start` waits for ``GET /system`` to answer.

    Use as a context manager (``with OrthancServer(folder, port) as server: ...``) or call
    :meth:`start` / :meth:`stop`.
    """

    def __init__(self, folder: str | Path, http_port: int = DEFAULT_HTTP_PORT, dicom_port: int | None = None,
                 startup_timeout_s: float = 30.0):
        self.folder = Path(folder)
        self.http_port = int(http_port)
        self.dicom_port = None if dicom_port is None else int(dicom_port)
        self.startup_timeout_s = float(startup_timeout_s)
        self.files = server_files(self.folder)
        self._process: ServerProcess | None = None

    @property
    def url(self) -> str:
        """The REST API root, e.g. http://127.0.0.1:8042."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (QIDO-RS, WADO-RS, STOW-RS), e.g. http://127.0.0.1:8042/dicom-web."""
        return f"{self.url}/dicom-web"

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_NAME

    @property
    def pid_path(self) -> Path:
        return self.files.pid_path

    @property
    def log_path(self) -> Path:
        return self.files.log_path

    @property
    def pid(self) -> int | None:
        """The pid of the process this object started, while it runs; else None."""
        return None if self._process is None else self._process.pid

    def write_config(self) -> Path:
        """Write ``orthanc.json`` (atomically) and return its path."""
        from orthogen.io.atomic_write import atomic_file  # here: orthogen.io loads MONAI (~10 s), `stop` need not

        config = orthanc_config(self.folder, self.http_port, self.dicom_port)
        (self.folder / STORAGE_NAME).mkdir(parents=True, exist_ok=True)
        with atomic_file(self.config_path) as temporary:
            temporary.write_text(json.dumps(config, indent=2) + "\n")
        return self.config_path

    def start(self) -> OrthancServer:
        """Write the config, start ``Orthanc <config>``, write the pid file and wait for ``GET /system``.

        Raises:
            OrthancError: Orthanc or its DICOMweb plugin is not installed (naming the install script); an
                Orthanc of ours already runs on this folder; a port is taken; the process exits or does
                not answer within ``startup_timeout_s`` (quoting the end of ``orthanc.log``). A process
                that started is stopped before the error is raised.
        """
        binary = find_orthanc_binary()
        if binary is None or not DICOMWEB_PLUGIN.is_file():
            missing = "the Orthanc binary" if binary is None else str(DICOMWEB_PLUGIN)
            raise OrthancError(f"{missing} not found; {INSTALL_HINT}")
        running = running_pid(self.folder)
        if running is not None:
            raise OrthancError(f"{self.folder}: an Orthanc of ours already runs here (pid {running}); stop it "
                               f"with `python -m orthogen.serving.orthanc_server stop --folder {self.folder}`")
        for name, port in (("HTTP", self.http_port), ("DICOM", self.dicom_port)):
            if port is not None and not port_is_free(port):
                raise OrthancError(f"{name} port {port} is in use; expected a free port for Orthanc")
        config = self.write_config()
        self._process = ServerProcess(self.files, [str(binary), str(config.resolve())], f"{self.url}/system",
                                      "Orthanc", startup_timeout_s=self.startup_timeout_s)
        try:
            self._process.start()
        except ServerProcessError as error:
            raise OrthancError(str(error)) from None
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process this object started (SIGTERM, wait ``timeout_s``, then SIGKILL) and remove
        the pid file; nothing happens when it is not running."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(timeout_s)

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def server_files(folder: str | Path) -> ServerFiles:
    """orthanc.pid and orthanc.log in ``folder``; ours when an ``Orthanc`` process runs ``folder``/orthanc.json."""
    folder = Path(folder)
    return ServerFiles(folder, "orthanc", str((folder / CONFIG_NAME).resolve()), program="Orthanc")


def stop_from_pidfile(folder: str | Path, timeout_s: float = 10.0) -> int | None:
    """Stop the Orthanc of ours whose pid is in ``folder``/orthanc.pid (SIGTERM, wait, then SIGKILL).

    The pid is signalled only while it is a process started with this folder's config (so a recycled pid
    is never killed); a stale pid file is removed. Returns the stopped pid, or None when no Orthanc of ours
    was running.
    """
    return server_files(folder).stop_running(timeout_s)


def running_pid(folder: str | Path) -> int | None:
    """The pid in ``folder``/orthanc.pid when it is a live Orthanc run with ``folder``/orthanc.json."""
    return server_files(folder).running_pid()


def main(argv: list[str] | None = None) -> int:
    """``start`` / ``stop`` an Orthanc of ours on a folder; errors are one line on stderr, status 1.

    ``start`` when ours already runs there on the same port says so and succeeds (``make serve`` again).
    """
    parser = argparse.ArgumentParser(prog="python -m orthogen.serving.orthanc_server",
                                     description="Start or stop OrthoGen's Orthanc (DICOMweb on 127.0.0.1).")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--folder", default="output/orthanc", help="config, pid file, log and storage/")
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--dicom-port", type=int, default=None, help="a DICOM (DIMSE) port; default: none")
    args = parser.parse_args(argv)
    try:
        running = running_pid(args.folder)
        if args.action == "start" and running is not None:
            port = json.loads((Path(args.folder) / CONFIG_NAME).read_text())["HttpPort"]
            if port != args.http_port:
                raise OrthancError(f"{args.folder}: an Orthanc of ours already runs here (pid {running}) on port "
                                   f"{port}, not {args.http_port}; stop it first")
            print(f"Orthanc already running (pid {running}) on http://{LOOPBACK}:{port}")
        elif args.action == "start":
            server = OrthancServer(args.folder, args.http_port, args.dicom_port).start()
            version = requests.get(f"{server.url}/system", timeout=5).json()["Version"]
            print(f"Orthanc {version} (pid {server.pid}) on {server.url}, DICOMweb {server.dicomweb_url}; "
                  f"data in {server.folder / STORAGE_NAME}, log {server.log_path}")
        else:
            pid = stop_from_pidfile(args.folder)
            print(f"stopped Orthanc pid {pid}" if pid else f"no Orthanc of ours running on {args.folder}")
    except OrthancError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
