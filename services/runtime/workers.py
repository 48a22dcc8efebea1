"""Helper processes a service starts for CPU-heavy work (e.g. rendering PDFs)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def worker_init(niceness: int = 19) -> None:
    """Runs first in each worker: yield the CPU to the service, and die with it.

    A worker outliving a killed service would hold the CPU and files for nobody.
    """
    os.nice(niceness)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
