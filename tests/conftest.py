"""Fixtures shared by every test suite: real servers on free ports, services as processes.

The servers are session-scoped (one nats-server, one SecantusDB, one SMTP sink for the whole
run, each in its own temporary directory); tests keep apart by using their own stream,
database and subject names. ``service_process`` starts services per test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.processes import ManagedProcess
from stack.smtp_sink import SmtpSink
from tests.support.stack import (
    servers_env,
    start_mongo,
    start_nats,
    start_service,
    start_smtp_sink,
)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A started nats-server with JetStream; ``.url``, ``.port``, ``.monitor_url``."""
    server = start_nats(tmp_path_factory.mktemp("nats-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A started SecantusDB (replica set "secantus", transactions work); ``.url``, ``.port``."""
    server = start_mongo(tmp_path_factory.mktemp("secantusdb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    """A started SMTP sink; ``.host``, ``.port``, ``.mail_dir``, ``.messages()``."""
    sink = start_smtp_sink(tmp_path_factory.mktemp("smtp-sink"))
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def stack_env(
    nats_server: NatsServer, mongo_server: MongoServer, smtp_sink: SmtpSink
) -> dict[str, str]:
    """SAMSKAB_NATS_URL, SAMSKAB_MONGO_URL, SAMSKAB_SMTP_HOST, SAMSKAB_SMTP_PORT."""
    return servers_env(nats_server, mongo_server, smtp_sink)


class ServiceProcessFactory(Protocol):
    def __call__(
        self,
        name: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        command: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> ManagedProcess: ...


@pytest.fixture
def service_process(
    stack_env: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> Iterator[ServiceProcessFactory]:
    """Start ``python -m services.<name>`` against the session servers; stopped after the test.

    ``service_process("ambassadors", {"SAMSKAB_GOAL_AMBASSADORS": "5"})`` returns the
    ManagedProcess once ``ambassadors.health`` answers. ``command`` replaces the argv (a
    stand-in service). SAMSKAB_DATA_DIR is the test's tmp_path; logs are there too.
    """
    started: list[ManagedProcess] = []

    def start(
        name: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        command: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> ManagedProcess:
        env = {**stack_env, "SAMSKAB_DATA_DIR": str(tmp_path), **(extra_env or {})}
        process = start_service(
            name,
            nats_url=nats_server.url,
            env=env,
            log_path=tmp_path / "log" / f"{name}-{len(started)}.log",
            command=command,
            timeout=timeout,
        )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()
        # Shown by pytest only when the test failed: the service's own account of it.
        print(f"--- {process.name}: {process.log_path}\n{process.log_tail(40)}")
