"""The release a process runs: the installed samskab package's version (what
``samskab health`` shows beside each service and the website)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def release() -> str:
    try:
        return version("samskab")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


VERSION = release()
