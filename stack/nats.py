"""nats-server with JetStream for the embedded stack and the tests, and the service health probe."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.errors import Error as NatsError

from contracts.envelope import MAX_MESSAGE_BYTES
from services.runtime.client import inbox_prefix
from services.runtime.settings import nats_servers
from stack.nats_accounts import password_variable
from stack.processes import ManagedProcess, find_executable, tcp_accepts

__all__ = [
    "NatsServer",
    "request_health",
    "run_sync",
    "service_is_healthy",
    "write_nats_config",
]

T = TypeVar("T")


def write_nats_config(
    path: Path,
    *,
    host: str,
    port: int,
    http_port: int,
    store_dir: Path,
    server_name: str = "samskab",
    accounts: str | None = None,
) -> Path:
    """Write the server's config to ``path``; with ``accounts`` (the text of an accounts
    file, see stack/nats_accounts.py) beside it in ``accounts.conf``, included, so that only
    its users may connect. Without, any client may connect and do anything (test servers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    include = ""
    if accounts is not None:
        (path.parent / "accounts.conf").write_text(accounts, encoding="utf-8")
        include = (
            "\n# Users and their permissions, as deploy/nats/accounts.conf.\n"
            "include ./accounts.conf\n"
        )
    path.write_text(
        f"""# Written by samskab's stack/nats.py on every start; edits here are overwritten.
server_name: {json.dumps(server_name)}
listen: "{host}:{port}"
http: "{host}:{http_port}"
max_payload: {MAX_MESSAGE_BYTES}

jetstream {{
  store_dir: {json.dumps(str(store_dir))}
  # fsync every write before the publish ack: the default lazy fsync (every 2 minutes) can
  # lose messages the server has already acknowledged if the OS crashes or power fails.
  sync_interval: always
}}
{include}""",
        encoding="utf-8",
    )
    return path


class NatsServer(ManagedProcess):
    """A single nats-server with JetStream on file storage under ``store_dir``.

    ``accounts`` and ``passwords``: the users that may connect (the text of an accounts file
    and each user's password, which the server reads from its environment); without them
    the server is open to anyone, which only the tests' own servers are.
    """

    def __init__(
        self,
        *,
        store_dir: Path,
        port: int,
        http_port: int,
        log_path: Path,
        host: str = "127.0.0.1",
        server_name: str = "samskab",
        config_path: Path | None = None,
        name: str = "nats",
        accounts: str | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.accounts = accounts
        self.port = port
        self.http_port = http_port
        self.store_dir = Path(store_dir)
        self.server_name = server_name
        self.config_path = config_path or self.store_dir.parent / "nats-server.conf"
        env = None
        if passwords:
            env = {**os.environ, **{password_variable(u): p for u, p in passwords.items()}}
        super().__init__(
            name,
            [find_executable("nats-server"), "-c", str(self.config_path)],
            log_path=log_path,
            env=env,
            ready_check=self.is_ready,
        )

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> None:
        write_nats_config(
            self.config_path,
            host=self.host,
            port=self.port,
            http_port=self.http_port,
            store_dir=self.store_dir,
            server_name=self.server_name,
            accounts=self.accounts,
        )
        super().start()

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=1.0
            ) as response:
                healthy = response.status == 200
        except (urllib.error.URLError, OSError):
            return False
        # The monitoring port opens before JetStream starts and before the client port
        # listens, so a healthy monitor alone does not mean clients can connect yet.
        return healthy and tcp_accepts(self.host, self.port)

    def varz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.monitor_url}/varz", timeout=2.0) as response:
            result: dict[str, Any] = json.load(response)
        return result


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, even inside a running event loop.

    The stack's API is synchronous (the launcher's main loop, pytest fixtures) but is also
    called from async tests, where ``asyncio.run`` would refuse; a private thread with its own
    loop works in both.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="stack-run-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


async def request_health(
    nats_url: str,
    service: str,
    *,
    timeout: float = 1.0,
    user: str | None = None,
    password: str | None = None,
) -> Mapping[str, Any] | None:
    """Ask ``<service>.health`` over one short-lived connection; its result, or None."""

    async def quiet(_exc: Exception) -> None:
        # Probes fail by design while a service is starting; nats-py would log each one.
        return None

    try:
        nc = await nats.connect(
            nats_servers(nats_url),
            user=user,
            password=password,
            # With the shipped permissions a user reads replies only on its own inbox.
            inbox_prefix=inbox_prefix(user) if user else "_INBOX",
            connect_timeout=timeout,
            allow_reconnect=False,
            # nats-py reads 0 as "no limit"; 1 gives up after the second try.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=quiet,
        )
    except (NatsError, OSError):
        return None
    try:
        msg = await nc.request(f"{service}.health", b"{}", timeout=timeout)
        reply = json.loads(msg.data)
    except (NatsError, OSError, ValueError):
        return None
    finally:
        await nc.close()
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        return None
    result = reply.get("result")
    if not isinstance(result, dict) or result.get("service") != service:
        return None
    return result


def service_is_healthy(
    nats_url: str,
    service: str,
    *,
    timeout: float = 1.0,
    user: str | None = None,
    password: str | None = None,
) -> bool:
    """Synchronous probe for ManagedProcess.wait_ready."""
    result = run_sync(
        request_health(nats_url, service, timeout=timeout, user=user, password=password)
    )
    return result is not None
