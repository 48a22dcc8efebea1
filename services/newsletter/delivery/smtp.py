"""Sending over SMTP: a few persistent connections, reused mail after mail, and a rate limit.

A connection per mail costs a TCP (and TLS) handshake, EHLO and AUTH each time; a digest to
thousands of subscribers goes out over ``mail_concurrency`` connections opened once. A
connection that failed (timeout, server gone) is dropped and opened again on next use; after
an SMTP refusal aiosmtplib has already reset the envelope (RSET), so it is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import aiosmtplib

from services.newsletter.delivery.states import PermanentFailure, classify
from services.newsletter.settings import NewsletterSettings
from services.runtime.logging import get_logger

__all__ = ["RateLimiter", "SmtpPool"]

log = get_logger(__name__)

# A connection idle this long is checked with NOOP before use: servers drop idle clients,
# and a mail should not pay a failed attempt (and a backoff) for that.
IDLE_CHECK_SECONDS = 10.0


class RateLimiter:
    """At most ``rate`` acquisitions per second, over everything that shares it.

    A token bucket holding ``burst`` tokens; with the default of one, sends are spaced
    evenly, which is what providers' per-second limits measure. ``rate`` 0 is no limit.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        # Waiters queue on the lock, so tokens go out in arrival order.
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class _Connection:
    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.client = client
        self.last_used = 0.0


class SmtpPool:
    """``mail_concurrency`` SMTP connections, opened lazily and kept open between mails."""

    def __init__(
        self,
        settings: NewsletterSettings,
        *,
        size: int | None = None,
        rate_per_second: float | None = None,
    ) -> None:
        self.size = size or settings.mail_concurrency
        rate = settings.mail_rate_per_second if rate_per_second is None else rate_per_second
        self.limiter = RateLimiter(rate)
        self._timeout = settings.smtp_timeout_seconds
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._all: list[_Connection] = []
        for _ in range(self.size):
            client = aiosmtplib.SMTP(
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_user or None,
                password=password if settings.smtp_user else None,
                # Given, not looked up: socket.getfqdn() can stall on DNS for seconds.
                local_hostname=settings.mail_message_id_domain,
                timeout=settings.smtp_timeout_seconds,
                use_tls=settings.smtp_security == "tls",
                # False, not None: None would upgrade whenever the server offers STARTTLS,
                # and "none" means exactly plain SMTP.
                start_tls=settings.smtp_security == "starttls",
            )
            connection = _Connection(client)
            self._all.append(connection)
            self._idle.put_nowait(connection)
        self._closed = False
        self.connects = 0

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Send one message; raises a :class:`DeliveryFailure` that says whether to retry.

        Waits for a free connection (at most ``size`` sends at once) and for the rate limit.
        Returns when the server accepted the message for at least one recipient.
        """
        if self._closed:
            raise RuntimeError("SmtpPool is closed")
        connection = await self._idle.get()
        try:
            await self.limiter.acquire()
            await self._send(connection, message, sender, list(recipients))
        finally:
            self._idle.put_nowait(connection)

    async def _send(
        self, connection: _Connection, message: bytes, sender: str, recipients: list[str]
    ) -> None:
        client = connection.client
        try:
            await self._ready(connection)
            options: list[str] = []
            if not all(address.isascii() for address in [sender, *recipients]):
                options.append("SMTPUTF8")
            if not message.isascii() and client.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            refused, _ = await client.sendmail(sender, recipients, message, mail_options=options)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
            # The server answered: the connection is fine, and aiosmtplib sent RSET. A 421
            # is the server closing on us, though.
            if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421:
                self._drop(connection)
            raise classify(exc) from exc
        except ValueError as exc:
            # aiosmtplib refuses an address before anything is sent.
            raise PermanentFailure(f"unusable address: {exc}") from exc
        except BaseException as exc:
            # Timeout, lost connection, TLS failure, or cancelled mid-conversation: the
            # connection's state is unknown, so it is not used again.
            self._drop(connection)
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise
        finally:
            connection.last_used = time.monotonic()
        if refused:
            # Accepted for some recipients only; we send one recipient per mail, so this is
            # rare. It went out: retrying would double it for the others.
            log.warning("smtp refused some recipients", refused=len(refused))

    async def _ready(self, connection: _Connection) -> None:
        client = connection.client
        if client.is_connected and time.monotonic() - connection.last_used > IDLE_CHECK_SECONDS:
            try:
                await client.noop()
            except (aiosmtplib.SMTPException, OSError):
                self._drop(connection)
        if not client.is_connected:
            await client.connect()
            self.connects += 1

    def _drop(self, connection: _Connection) -> None:
        connection.client.close()

    async def close(self) -> None:
        """QUIT every open connection; sends still running finish first."""
        self._closed = True
        for _ in range(self.size):
            connection = await self._idle.get()
            client = connection.client
            if client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                    await asyncio.wait_for(client.quit(), timeout=min(self._timeout, 5.0))
            client.close()

    async def __aenter__(self) -> SmtpPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
