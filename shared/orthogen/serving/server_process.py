"""A server of ours as a child process: started in its own session with its output in a log file and its pid
in a file of our folder, waited for until a health URL answers, stopped by that pid.

Written here rather than taken from a library: supervisors (supervisord, systemd) are not what a test or
``make serve`` can start and stop as an ordinary user, and ``subprocess`` alone keeps no pid file for a later
``make stop``. The pid in the file is signalled only while that process's command line is still the one
we started (a marker argument on it), so a recycled pid is never killed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from orthogen.errors import OrthoGenError

__all__ = ["ServerFiles", "ServerProcess", "ServerProcessError", "is_alive", "log_tail", "port_is_free"]

#: Lines of a server's log quoted in an error.
_LOG_TAIL_LINES = 5


class ServerProcessError(OrthoGenError):
    """A server cannot be started or stopped; the message is one line (with the log's tail where one exists)."""


@dataclass(frozen=True)
class ServerFiles:
    """A server's pid file and log in its folder, and the argument that marks its command line as ours."""

    folder: Path
    name: str  # e.g. "orthanc": files orthanc.pid, orthanc.log
    marker: str  # an argument of the command line that only our server of this folder has (its config path)
    program: str | None = None  # the executable's file name (e.g. "Orthanc"); None: any

    @property
    def pid_path(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """The pid in the pid file while it is a live process whose command line holds ``marker`` (and whose
        executable is ``program``, when given)."""
        try:
            pid = int(self.pid_path.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if self.program is not None and Path(command[0].decode()).name != self.program:
            return None
        return pid if self.marker.encode() in command and is_alive(pid) else None

    def stop_running(self, timeout_s: float = 10.0) -> int | None:
        """Stop the server named by the pid file (SIGTERM to its process group, wait, then SIGKILL); a stale
        pid file is removed. Returns the stopped pid, or None when none of ours was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return None
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while is_alive(pid):
                time.sleep(0.05)
        self.remove_pid_file(pid)
        return pid

    def remove_pid_file(self, pid: int) -> None:
        """Remove the pid file if it still names ``pid`` (a newer server's file is left alone)."""
        try:
            if int(self.pid_path.read_text().strip()) == pid:
                self.pid_path.unlink()
        except (OSError, ValueError):
            pass


class ServerProcess:
    """Starts ``command`` (whose arguments include ``files.marker``) and waits for ``health_url``.

    Args:
        files: the pid file, log and marker.
        command: the server's command line.
        health_url: answered with 2xx once the server is up.
        title: the server's name in messages ("Orthanc", "MONAI Label").
        env: the child's environment (None: ours).
        startup_timeout_s: how long :meth:`start` waits for ``health_url``.
    """

    def __init__(self, files: ServerFiles, command: list[str], health_url: str, title: str,
                 env: dict[str, str] | None = None, startup_timeout_s: float = 30.0):
        self.files, self.command, self.health_url, self.title = files, command, health_url, title
        self.env, self.startup_timeout_s = env, float(startup_timeout_s)
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The pid of the process this object started, while it runs; else None."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def start(self) -> None:
        """Start the command in a new session (Ctrl-C in the shell that ran ``make serve`` does not reach
        it), write the pid file atomically and wait for the health URL; a process that started is stopped
        before any error is raised."""
        from orthogen.io.atomic_write import atomic_file  # here: orthogen.io loads MONAI (~10 s), `stop` need not

        self.files.folder.mkdir(parents=True, exist_ok=True)
        with open(self.files.log_path, "ab") as log:
            self._process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.files.folder, env=self.env,
                                             start_new_session=True)
        with atomic_file(self.files.pid_path) as temporary:
            temporary.write_text(f"{self._process.pid}\n")
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._process.poll() is not None:
                raise ServerProcessError(f"{self.title} exited with status {self._process.returncode} before "
                                         f"answering GET {self.health_url}; {self.files.log_path} ends: "
                                         f"{log_tail(self.files.log_path)}")
            try:
                if requests.get(self.health_url, timeout=2.0).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServerProcessError(f"{self.title} (pid {self._process.pid}) did not answer GET "
                                         f"{self.health_url} within {self.startup_timeout_s:g} s; "
                                         f"{self.files.log_path} ends: {log_tail(self.files.log_path)}")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process this object started (SIGTERM to its group, wait ``timeout_s``, then SIGKILL)
        and remove the pid file; nothing happens when it is not running."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None:
            self.files.remove_pid_file(process.pid)


def _signal_group(pid: int, signum: int) -> None:
    """Signal the process group that ``pid`` leads (its own session), or just ``pid`` if it leads none."""
    try:
        os.killpg(pid, signum) if os.getpgid(pid) == pid else os.kill(pid, signum)
    except ProcessLookupError:
        pass


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, exited but not yet reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """Whether a TCP port can be bound on ``host`` (default every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` now (the system's pick; for tests and ad-hoc servers)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def log_tail(path: Path) -> str:
    """The last lines of a log on one line, joined by " | "."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"
