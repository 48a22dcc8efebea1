"""Build and start pieces of the embedded stack for tests: fresh dirs, free ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from services import registry
from stack.embedded import EmbeddedStack, ServiceCommand, default_service_command, fresh_settings
from stack.facebook import DEFAULT_PAGE_ID
from stack.mongo import MongoServer
from stack.nats import NatsServer, run_sync, service_is_healthy
from stack.processes import ManagedProcess, free_port
from stack.settings import SECRET_FIELDS
from stack.smtp_sink import SmtpSink
from stack.streams import declare_streams_at

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "REPO_ROOT",
    "TESTER",
    "TOKEN_SECRETS",
    "fake_service_command",
    "fresh_settings",
    "fresh_stack",
    "servers_env",
    "settings_of",
    "start_mongo",
    "start_nats",
    "start_service",
    "start_smtp_sink",
]


# The NATS user a test logs in as to an embedded stack's nats-server (see fresh_stack).
TESTER = "tester"


def fresh_stack(
    data_dir: Path,
    *,
    service_command: ServiceCommand = default_service_command,
    **overrides: Any,
) -> EmbeddedStack:
    """An EmbeddedStack (not started) on ``fresh_settings``; children run from the repo root."""
    return EmbeddedStack(
        fresh_settings(data_dir, **overrides),
        REPO_ROOT,
        nats_monitor_port=free_port(),
        service_command=service_command,
        ready_timeout=20.0,
        # To set up and look at what a test checks; make up's stack has no such user.
        unrestricted_nats_users=[TESTER],
    )


def fake_service_command(name: str) -> list[str]:
    """argv of the stand-in service (tests/support/fake_service.py); run it from REPO_ROOT."""
    return [sys.executable, "-m", "tests.support.fake_service", name]


def start_nats(directory: Path, *, timeout: float = 20.0) -> NatsServer:
    server = NatsServer(
        store_dir=directory / "nats",
        port=free_port(),
        http_port=free_port(),
        log_path=directory / "log" / "nats.log",
    )
    server.start()
    _ready_or_stop(server, timeout)
    return server


def start_mongo(directory: Path, *, timeout: float = 30.0) -> MongoServer:
    server = MongoServer(
        storage_path=directory / "mongo",
        port=free_port(),
        log_path=directory / "log" / "mongo.log",
    )
    server.start()
    _ready_or_stop(server, timeout)
    return server


def start_smtp_sink(directory: Path, *, timeout: float = 20.0) -> SmtpSink:
    sink = SmtpSink(
        mail_dir=directory / "mail",
        port=free_port(),
        log_path=directory / "log" / "smtp-sink.log",
    )
    sink.start()
    _ready_or_stop(sink, timeout)
    return sink


# The keys that sign the tokens in mails (and the Page token the Graph API stand-in
# accepts), as every service of a test gets them; and the Page the stand-in plays.
TOKEN_SECRETS = {
    **{
        f"SAMSKAB_{field.upper()}": f"tests-{field.replace('_', '-')}-0123456789abcdef"
        for field in SECRET_FIELDS
    },
    "SAMSKAB_FACEBOOK_PAGE_ID": DEFAULT_PAGE_ID,
}


def servers_env(nats: NatsServer, mongo: MongoServer, smtp: SmtpSink) -> dict[str, str]:
    """The variables a service or the CLI needs to use these servers."""
    return {
        "SAMSKAB_NATS_URL": nats.url,
        "SAMSKAB_MONGO_URL": mongo.url,
        "SAMSKAB_SMTP_HOST": smtp.host,
        "SAMSKAB_SMTP_PORT": str(smtp.port),
        **TOKEN_SECRETS,
    }


def start_service(
    name: str,
    *,
    nats_url: str,
    env: Mapping[str, str],
    log_path: Path,
    command: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> ManagedProcess:
    """Start ``python -m services.<name>`` (or ``command``) and wait for ``<name>.health``.

    A service waits at start-up for the streams it consumes, and services consume each
    other's (events and networks, both ways): a test that starts one without the others
    has every built service's stream declared first, as its producer would (each updates
    its own to its settings when it starts)."""
    if command is None:
        run_sync(declare_streams_at(nats_url, registry.built()))
    process = ManagedProcess(
        name,
        command or default_service_command(name),
        log_path=log_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        cwd=REPO_ROOT,
        ready_check=lambda: service_is_healthy(nats_url, name),
    )
    process.start()
    _ready_or_stop(process, timeout, interval=0.2)
    return process


def _ready_or_stop(process: ManagedProcess, timeout: float, interval: float = 0.1) -> None:
    try:
        process.wait_ready(timeout=timeout, interval=interval)
    except BaseException:
        process.stop()
        raise


S = TypeVar("S", bound=BaseSettings)


def settings_of(cls: type[S], **values: Any) -> S:
    """``cls`` (a service's settings) as a test runs it: no .env, the test token secrets."""
    secrets = {
        key.removeprefix("SAMSKAB_").lower(): value
        for key, value in TOKEN_SECRETS.items()
        if key.removeprefix("SAMSKAB_").lower() in cls.model_fields
    }
    return cls(_env_file=None, **{**secrets, **values})


def venv_script(name: str) -> Path:
    """A console script of the environment pytest runs in (``.venv/bin/<name>`` under make)."""
    for directory in (Path(sys.executable).parent, REPO_ROOT / ".venv" / "bin"):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} is not installed next to {sys.executable}; run `make install`")
