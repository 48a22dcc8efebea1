"""Reading what the stack's SMTP sink received, the way a mail client would.

The sink (``stack/smtp_sink.py``) stores each accepted message as one ``.eml`` file under
``<data dir>/mail``, named so that sorting gives arrival order, and written under a dot-name
first, so a ``*.eml`` file is always complete. Files never change once there, so each is
parsed once. Delivery is asynchronous: :meth:`Mailbox.wait` polls with a deadline.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from stack.smtp_sink import ENVELOPE_TO_HEADER, read_duplicates

__all__ = ["Mail", "Mailbox", "Unsubscribe"]

_PARSER = email.parser.BytesParser(_class=EmailMessage, policy=email.policy.default)
_ANGLE_URIS = re.compile(r"<([^<>]+)>")


@dataclass(frozen=True)
class Unsubscribe:
    """The RFC 8058 headers of one mail."""

    url: str
    mailto: str
    post: str
    token: str


@dataclass(frozen=True)
class Mail:
    """One stored message."""

    path: Path
    message: EmailMessage

    @property
    def to(self) -> list[str]:
        """Envelope recipients (lower case): where the message really went."""
        return [str(v).strip().lower() for v in self.message.get_all(ENVELOPE_TO_HEADER) or []]

    @property
    def recipient(self) -> str:
        """The only envelope recipient; every mail of the service goes to one person."""
        assert len(self.to) == 1, f"{self.path.name}: envelope recipients {self.to}"
        return self.to[0]

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()

    def header(self, name: str) -> str | None:
        value = self.message.get(name)
        return None if value is None else str(value)

    def _body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, f"{self.path.name} has no text/{subtype} part"
        assert isinstance(part, EmailMessage)
        content = part.get_content()
        assert isinstance(content, str)
        return content

    @property
    def text(self) -> str:
        return self._body("plain")

    @property
    def html(self) -> str:
        return self._body("html")

    def attachments(self) -> list[EmailMessage]:
        return [p for p in self.message.iter_attachments() if isinstance(p, EmailMessage)]

    def parts(self) -> list[EmailMessage]:
        return [p for p in self.message.walk() if isinstance(p, EmailMessage)]

    def unsubscribe(self) -> Unsubscribe | None:
        """The List-Unsubscribe URL, mailto and token; None if the mail has none."""
        value = self.header("List-Unsubscribe")
        if value is None:
            return None
        uris = _ANGLE_URIS.findall(value)
        urls = [u for u in uris if u.startswith(("https://", "http://"))]
        mailtos = [u for u in uris if u.startswith("mailto:")]
        assert len(urls) == 1 and len(mailtos) == 1, f"{self.path.name}: {value!r}"
        token = urls[0].rstrip("/").rsplit("/", 1)[-1]
        return Unsubscribe(
            url=urls[0],
            mailto=mailtos[0],
            post=str(self.message.get("List-Unsubscribe-Post", "")),
            token=token,
        )

    def describe(self) -> str:
        return f"{self.path.name}: to {self.to}, subject {self.subject!r}"


@dataclass
class Mailbox:
    """The sink's mail directory."""

    directory: Path
    _cache: dict[str, Mail] = field(default_factory=dict)

    def all(self) -> list[Mail]:
        """Every stored message, oldest first."""
        if not self.directory.is_dir():
            return []
        mails = []
        for path in sorted(self.directory.glob("*.eml")):
            mail = self._cache.get(path.name)
            if mail is None:
                with path.open("rb") as file:
                    message = _PARSER.parse(file)
                assert isinstance(message, EmailMessage)
                mail = self._cache[path.name] = Mail(path, message)
            mails.append(mail)
        return mails

    def matching(self, match: Callable[[Mail], bool]) -> list[Mail]:
        return [m for m in self.all() if match(m)]

    def to(self, address: str) -> list[Mail]:
        address = address.lower()
        return self.matching(lambda m: address in m.to)

    def duplicates(self) -> list[str]:
        """Message-IDs the sink dropped because it had stored them already."""
        return read_duplicates(self.directory)

    def wait(
        self,
        match: Callable[[Mail], bool],
        *,
        count: int = 1,
        timeout: float,
        what: str,
        interval: float = 0.2,
    ) -> list[Mail]:
        """Poll until at least ``count`` messages match; those (all of them) in arrival order."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(match)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                seen = self.all()
                last = "\n  ".join(m.describe() for m in seen[-5:])
                raise AssertionError(
                    f"{what}: {len(found)} of {count} mail(s) after {timeout:g} s "
                    f"({len(seen)} in {self.directory}; the last:\n  {last})"
                )
            time.sleep(interval)
