"""Secret tokens people receive by mail (confirmation, unsubscribe) and how we store them."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    # A token is typed or pasted after a command (`samskab ... confirm TOKEN`): one starting
    # with "-" would be read as an option.
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


def token_hash(token: str) -> str:
    # Only the hash of a confirmation token is stored: a leaked database confirms nobody.
    return hashlib.sha256(token.encode()).hexdigest()
