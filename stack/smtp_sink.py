"""A local SMTP server that accepts every message and keeps it as one ``.eml`` file.

The embedded stack's services send real SMTP here instead of to the outside world; tests and
people read the result back with :func:`read_mailbox` (or any mail client: ``.eml`` opens
everywhere). Run it with ``python -m stack.smtp_sink --host H --port P --dir DIR``.

Like Mailpit with ``MP_IGNORE_DUPLICATE_IDS``, a message whose Message-ID was stored before
is accepted (250) and dropped: a sender that resends after a crash, with the same
Message-ID, leaves one copy. Each drop is one line in :func:`duplicates_log` (beside the
mail directory, so the directory holds only ``.eml`` files); :func:`read_duplicates` reads it.
The stored file names carry a hash of the Message-ID, so the sink knows what it holds
after a restart without parsing every message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.parser
import email.policy
import functools
import hashlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from stack.processes import ManagedProcess

__all__ = [
    "ENVELOPE_FROM_HEADER",
    "ENVELOPE_TO_HEADER",
    "MAX_MESSAGE_BYTES",
    "MailboxHandler",
    "SmtpSink",
    "duplicates_log",
    "main",
    "message_id_key",
    "read_duplicates",
    "read_mailbox",
    "smtp_banner_ok",
    "wait_for_mail",
]

log = logging.getLogger("stack.smtp_sink")

MAX_MESSAGE_BYTES = 25 * 1024 * 1024
ENVELOPE_TO_HEADER = "X-Samskab-Envelope-To"
ENVELOPE_FROM_HEADER = "X-Samskab-Envelope-From"


def duplicates_log(directory: Path | str) -> Path:
    """Where the sink writes one line per dropped duplicate: ``<mail dir>-duplicates.log``."""
    directory = Path(directory)
    return directory.parent / f"{directory.name}-duplicates.log"


def read_duplicates(directory: Path | str) -> list[str]:
    """The Message-IDs of the messages the sink dropped as duplicates, oldest first."""
    path = duplicates_log(directory)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(" ", 1)[1] for line in lines if " " in line]


def message_id_key(message_id: str) -> str:
    """The 32 hex digits a stored message with this Message-ID carries in its file name."""
    return hashlib.sha256(message_id.strip().encode("utf-8", "replace")).hexdigest()[:32]


def _message_id(raw: bytes) -> str | None:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 2]
    # compat32 and headers only: no MIME parsing of a body we only need to store.
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    value = parser.parsebytes(head).get("Message-ID")
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class MailboxHandler:
    """aiosmtpd handler: every message becomes ``<UTC ns>-<key>.eml`` under ``directory``.

    ``key`` is :func:`message_id_key` of its Message-ID, or a uuid4 hex when it has none.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._last_ns = 0
        self._lock = threading.Lock()
        # The keys of every stored message, from the names: survives a restart. A uuid of a
        # message without Message-ID lands here too, harmlessly (no Message-ID hashes to it).
        self._seen = {path.stem.partition("-")[2] for path in self.directory.glob("*.eml")}
        self.duplicates = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message_id = _message_id(raw)
        key = message_id_key(message_id) if message_id else uuid.uuid4().hex
        # Checked and claimed with no await in between: two sessions delivering the same
        # Message-ID at once store it once.
        if message_id and key in self._seen:
            self.duplicates += 1
            await asyncio.to_thread(self._record_duplicate, message_id)
            log.info("dropped duplicate %s", message_id)
            return "250 OK: duplicate Message-ID, dropped"
        self._seen.add(key)
        # Bcc recipients exist only in the envelope; record them or tests cannot see them.
        header = b"".join(
            [f"{ENVELOPE_FROM_HEADER}: {envelope.mail_from or ''}\r\n".encode()]
            + [f"{ENVELOPE_TO_HEADER}: {rcpt}\r\n".encode() for rcpt in envelope.rcpt_tos]
        )
        storing = asyncio.ensure_future(asyncio.to_thread(self._store, header + raw, key))
        try:
            # Shielded: a client that drops the connection cancels this handler, but the
            # thread goes on writing the file; the key must stay taken if it does.
            path = await asyncio.shield(storing)
        except asyncio.CancelledError:
            storing.add_done_callback(functools.partial(self._release_unless_stored, key))
            raise
        except BaseException:
            # Not stored: the client is told so and may send it again.
            self._seen.discard(key)
            raise
        log.info("stored %s for %s", path.name, ", ".join(envelope.rcpt_tos))
        return "250 OK: stored"

    def _release_unless_stored(self, key: str, storing: asyncio.Future[Path]) -> None:
        if storing.cancelled() or storing.exception() is not None:
            self._seen.discard(key)

    def _next_name(self, key: str) -> str:
        with self._lock:
            # Strictly increasing even if two messages land in the same nanosecond or the
            # clock steps back, so sorting names always gives arrival order.
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            return f"{self._last_ns:020d}-{key}.eml"

    def _store(self, data: bytes, key: str) -> Path:
        name = self._next_name(key)
        final = self.directory / name
        # A dot-name without .eml: readers never see a half-written message.
        tmp = self.directory / f".{name}.tmp"
        with tmp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, final)
        return final

    def _record_duplicate(self, message_id: str) -> None:
        line = f"{datetime.now(UTC).isoformat()} {message_id}\n"
        with self._lock, duplicates_log(self.directory).open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


class _LenientSMTP(SMTP):
    # RFC 5321 caps lines at 1000 octets and aiosmtpd enforces it, but real relays and
    # Mailpit accept longer ones; a sink that rejected them would fail sends that work in
    # production. The per-line memory cost is bounded by this value.
    line_length_limit = 1024 * 1024


def read_mailbox(directory: Path | str) -> list[EmailMessage]:
    """Every stored message, oldest first; an absent directory is an empty mailbox."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    parser = email.parser.BytesParser(_class=EmailMessage, policy=email.policy.default)
    messages: list[EmailMessage] = []
    for path in sorted(directory.glob("*.eml")):
        with path.open("rb") as file:
            message = parser.parse(file)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def wait_for_mail(
    directory: Path | str, count: int, timeout: float = 10.0, interval: float = 0.1
) -> list[EmailMessage]:
    """Poll until the mailbox holds at least ``count`` messages; returns all of them."""
    deadline = time.monotonic() + timeout
    while True:
        messages = read_mailbox(directory)
        if len(messages) >= count or time.monotonic() >= deadline:
            if len(messages) < count:
                raise TimeoutError(
                    f"{len(messages)} message(s) in {directory} after {timeout} s, expected {count}"
                )
            return messages
        time.sleep(interval)


def smtp_banner_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True once the server accepts a connection and greets with 220."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            banner = sock.recv(512)
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
    except OSError:
        return False
    return banner.startswith(b"220")


class SmtpSink(ManagedProcess):
    """``python -m stack.smtp_sink`` as a child process."""

    def __init__(
        self,
        *,
        mail_dir: Path,
        port: int,
        log_path: Path,
        host: str = "127.0.0.1",
        name: str = "smtp-sink",
    ) -> None:
        self.host = host
        self.port = port
        self.mail_dir = Path(mail_dir)
        env = dict(os.environ)
        # Logs reach the file as they happen, not when a buffer fills or at exit.
        env["PYTHONUNBUFFERED"] = "1"
        super().__init__(
            name,
            [
                sys.executable,
                "-m",
                "stack.smtp_sink",
                "--host",
                host,
                "--port",
                str(port),
                "--dir",
                str(self.mail_dir),
            ],
            log_path=log_path,
            env=env,
            ready_check=self.is_ready,
        )

    def is_ready(self) -> bool:
        return smtp_banner_ok(self.host, self.port)

    def messages(self) -> list[EmailMessage]:
        return read_mailbox(self.mail_dir)

    def duplicates(self) -> list[str]:
        """Message-IDs this sink dropped because it had stored them already."""
        return read_duplicates(self.mail_dir)


async def serve(host: str, port: int, directory: Path) -> None:
    handler = MailboxHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _LenientSMTP(
            handler,
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            hostname="samskab-smtp-sink",
        ),
        host=host,
        port=port,
    )
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("SMTP sink listening on %s:%d, storing mail in %s", host, port, directory)
    async with server:
        await stopping.wait()
    log.info("SMTP sink stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"), help="mail directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
