"""The embedded stack's NATS passwords, one per user of ``deploy/nats/accounts.conf``.

Generated on the first start under ``<data_dir>/credentials/`` (a directory only its
owner may enter), one file per user (``<user>.json``, readable by its owner only), and kept:
a restart uses the same ones. The stack hands each service its own and the servers all of
them; the CLI, run from the repository, finds ``cli.json`` there
(:class:`services.runtime.settings.ClientSettings`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from services.runtime.credentials import CREDENTIALS_DIR, credentials_file, read_credentials

__all__ = ["CREDENTIALS_DIR", "credentials_file", "nats_passwords", "read_credentials"]


def _new_password() -> str:
    # Letters and digits only (nats-server parses the value as a config token), never
    # digits alone (it would read a number).
    while True:
        password = secrets.token_hex(24)
        if not password.isdigit():
            return password


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def nats_passwords(data_dir: Path, users: Iterable[str]) -> dict[str, str]:
    """Each user's password: the one stored under ``data_dir``, else a new one (stored)."""
    directory = data_dir / CREDENTIALS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    passwords: dict[str, str] = {}
    for user in users:
        found = read_credentials(data_dir, user)
        if found is None:
            found = (user, _new_password())
            _write_private(
                credentials_file(data_dir, user),
                json.dumps({"user": user, "password": found[1]}, indent=2),
            )
        else:
            os.chmod(credentials_file(data_dir, user), 0o600)
        passwords[user] = found[1]
    return passwords
