"""One child process of the embedded stack: started, watched, stopped, killed, restarted.

Every child gets its own session (process group) so that Ctrl-C in the terminal reaches only
the launcher, which then stops the children in order instead of them all dying at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "ProcessExitedError",
    "find_executable",
    "free_port",
    "port_in_use",
    "tcp_accepts",
]


class ProcessExitedError(RuntimeError):
    """The process ended while we were waiting for it to become ready."""


class ManagedProcess:
    """A child process whose stdout and stderr are appended to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_check: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_check = ready_check
        self.started_at: float | None = None
        self.starts = 0
        self._popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} running={self.running}>"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (negative: killed by that signal)."""
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            # A marker per start makes restarts visible when reading one long log.
            log.write(f"\n=== {stamp} starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        self.starts += 1

    def wait_ready(
        self,
        check: Callable[[], bool] | None = None,
        timeout: float = 30.0,
        interval: float = 0.1,
    ) -> None:
        """Poll ``check`` (default: the ``ready_check`` given at construction) until it is true.

        Raises ProcessExitedError at once if the process dies meanwhile, so a crash at start-up
        reports its log instead of waiting out the timeout, and TimeoutError after ``timeout``.
        """
        probe = check or self.ready_check
        if probe is None:
            raise ValueError(f"no readiness check for {self.name}")
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ProcessExitedError(
                    f"{self.name} exited with status {self.returncode} before it was ready; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if probe():
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name} was not ready after {timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``. Returns the exit status (None if never run)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._popen.wait()
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL without warning, as a crash would; reaps the process."""
        if self._popen is None or self._popen.poll() is not None:
            return
        self._signal(signal.SIGKILL)
        self._popen.wait()

    def restart(self, timeout: float = 10.0) -> None:
        self.stop(timeout)
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16_384))
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        # The whole group: a child that forks helpers (a shell wrapper, workers) must not
        # leave them behind. The group id is the child's pid because of start_new_session.
        try:
            os.killpg(self._popen.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(sig)


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now and not handed out before by this process.

    The kernel may give the same ephemeral port twice in a row when nothing binds it in
    between; remembering what we gave out keeps two servers of one test run apart.
    """
    with _handed_out_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free TCP port found")


def port_in_use(host: str, port: int) -> bool:
    """True if something listens on (host, port), so a server could not bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so sockets of a just-stopped stack in TIME_WAIT do not
        # block them; without it here we would refuse a restart that would have worked.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_executable(name: str) -> str:
    """``name`` on PATH, else next to the running interpreter (an unactivated venv)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    raise FileNotFoundError(
        f"{name} not found on PATH or in {candidate.parent}; run `make install`"
    )
