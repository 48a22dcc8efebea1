"""Running a command the way a person at a terminal does: its stderr on a pseudo-terminal
(where progress bars are drawn), its stdout captured as a pipe (where reports go)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    stdout: str
    # Everything drawn on the terminal, escape sequences and carriage returns included.
    terminal: str

    def describe(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nterminal:\n{self.terminal[-2000:]}"


def run_on_terminal(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    timeout: float,
    columns: int = 100,
) -> TerminalRun:
    """Run ``argv`` to its end with stderr on a terminal ``columns`` wide; killed (and the
    test failed) after ``timeout`` seconds."""
    leader, follower = pty.openpty()
    terminal_env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "40"}
    terminal_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=terminal_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    assert proc.stdout is not None
    drawn = bytearray()
    out = bytearray()
    deadline = time.monotonic() + timeout
    streams = {leader: drawn, proc.stdout.fileno(): out}
    try:
        while streams:
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError(
                    f"{' '.join(argv)} did not finish within {timeout:g} s; terminal:\n"
                    f"{drawn.decode(errors='replace')[-1500:]}"
                )
            ready, _, _ = select.select(list(streams), [], [], 0.2)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the terminal's other side closed (EIO)
                    chunk = b""
                if chunk:
                    streams[fd].extend(chunk)
                else:
                    del streams[fd]
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        proc.stdout.close()
    return TerminalRun(returncode, out.decode(errors="replace"), drawn.decode(errors="replace"))
