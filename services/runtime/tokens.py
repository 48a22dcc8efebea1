"""The tokens people receive by mail (confirm, unsubscribe, answer an invitation): signed
values that need no storage, so no database, stream or dead letter ever holds one.

A token is a few ids (and for some a nonce and an expiry) signed with HMAC-SHA256
(itsdangerous) under a secret and a purpose. The mail service mints it when it puts a mail
together; the service that owns what the token acts on verifies it with the same secret:

- ``ambassadors``: confirm a sign-up (the ambassador's id, the sign-up's nonce, expiry);
- ``newsletter``: confirm a subscription (subscriber, nonce, expiry), unsubscribe (subscriber);
- ``events``: answer an invitation (meeting, ambassador);
- ``networks``: answer an invitation to a network (network, ambassador), answer a staff
  network's call-out (alert, ambassador);
- ``social``: an ambassador's personal "send a story" link (ambassador).

The nonce, stored by the owner, is what makes a token single-use and replaceable (signing
up again sends a fresh one, and the old link stops working); it is not a secret, since
without the key no token can be made from it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import SecretStr

# The purposes, one per kind of link: a token for one is worthless for another.
AMBASSADOR_CONFIRMATION = "ambassadors.confirm"
SUBSCRIPTION_CONFIRMATION = "newsletter.confirm"
UNSUBSCRIBE = "newsletter.unsubscribe"
ANSWER = "events.answer"
NETWORK_ANSWER = "networks.answer"
ALERT_ANSWER = "networks.alert"
STORY_LINK = "social.stories"

Part = str | int


class Signer:
    """Signs and checks the tokens of one purpose under one secret."""

    def __init__(self, secret: SecretStr | str, purpose: str) -> None:
        key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self.purpose = purpose
        self._serializer = URLSafeSerializer(key, salt=f"samskab.{purpose}")

    def sign(self, *parts: Part) -> str:
        token = self._serializer.dumps(list(parts))
        assert isinstance(token, str)
        return token

    def parts(self, token: str, count: int) -> list[Part] | None:
        """The parts a genuine token of this purpose carries; None for anything else."""
        try:
            value = self._serializer.loads(token)
        except (BadSignature, ValueError, UnicodeError):
            return None
        if not isinstance(value, list) or len(value) != count:
            return None
        if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in value):
            return None
        return value


def new_nonce() -> str:
    return secrets.token_urlsafe(9)


def expiry(at: datetime) -> int:
    """An expiry as a token carries it (whole seconds since the epoch)."""
    return int(at.timestamp())


def expired(expires: Part, now: datetime) -> bool:
    return not isinstance(expires, int) or datetime.fromtimestamp(expires, UTC) <= now


def token_hash(token: str) -> str:
    """Tokens of older releases were random values stored only as this hash."""
    return hashlib.sha256(token.encode()).hexdigest()
