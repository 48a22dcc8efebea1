"""Where the embedded stack (``make up``) keeps each NATS user's password, and how a
client reads one: ``<data_dir>/credentials/<user>.json``, readable by its owner only.
stack/credentials.py writes them."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CREDENTIALS_DIR", "credentials_file", "read_credentials"]

CREDENTIALS_DIR = "credentials"


def credentials_file(data_dir: Path, user: str) -> Path:
    return data_dir / CREDENTIALS_DIR / f"{user}.json"


def read_credentials(data_dir: Path, user: str) -> tuple[str, str] | None:
    """``(user, password)`` from ``user``'s file under ``data_dir``, if there is one."""
    path = credentials_file(data_dir, user)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return str(stored["user"]), str(stored["password"])
