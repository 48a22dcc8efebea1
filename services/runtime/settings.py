"""Settings, read from the environment with the prefix ``SAMSKAB_`` (or a ``.env`` file).

One base for everything that talks to NATS (:class:`SamskabSettings`); the base of every
service (:class:`ServiceSettings`), on which each service declares its own options in
``services/<name>/settings.py``; what a client such as the CLI needs
(:class:`ClientSettings`). docker-compose sets the same names; a variable a service does not
know is ignored by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.credentials import read_credentials


class SamskabSettings(BaseSettings):
    """What every process of the system reads: where NATS is, and how to log."""

    model_config = SettingsConfigDict(env_prefix="SAMSKAB_", env_file=".env", extra="ignore")

    # One server, or a cluster's nodes comma-separated (nats://n1:4222,nats://n2:4222,...):
    # the first connection must find a live node even when the one listed first is down.
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = None
    # Request/reply timeout of a caller (the CLI, a service asking another).
    request_timeout_seconds: float = Field(default=10.0, gt=0)

    log_format: str = Field(default="console", pattern="^(console|json)$")
    log_level: str = "INFO"

    # Where traces go: none (not recorded), console, or otlp (OTLP/HTTP to otel_endpoint).
    # Every process reads it: a trace starts where a request does (the website) and goes
    # on through each service it reaches.
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str = "http://127.0.0.1:4318/v1/traces"

    @property
    def nats_servers(self) -> list[str]:
        return nats_servers(self.nats_url)


def nats_servers(url: str) -> list[str]:
    """The servers ``SAMSKAB_NATS_URL`` lists (nats-py takes a list, not a joined string)."""
    return [server.strip() for server in url.split(",") if server.strip()]


class ClientSettings(SamskabSettings):
    """A caller of the services (the CLI, tools): who it says it is."""

    # The NATS user whose password ``make up`` generated, used when none is configured.
    embedded_user: ClassVar[str] = "cli"

    # The operator named in every command's audit record; empty: the OS user.
    actor: str = ""
    # Where ``make up`` keeps its data. Without SAMSKAB_NATS_USER the CLI logs in as the
    # operators' user with the password the embedded stack generated there.
    data_dir: Path = Path("var")

    @model_validator(mode="after")
    def _embedded_stack_login(self) -> ClientSettings:
        if self.nats_user is None:
            found = read_credentials(self.data_dir, self.embedded_user)
            if found is not None:
                self.nats_user, self.nats_password = found
        return self


class ServiceSettings(SamskabSettings):
    """The base every service's settings extend."""

    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    # Empty means "samskab_<service>": every service owns its own database.
    mongo_database: str = ""

    # Public web address used in links (confirmation, certificate verification, unsubscribe).
    public_url: str = "http://localhost:8000"

    # JetStream
    stream_replicas: int = Field(default=1, ge=1, le=5)
    stream_max_age_days: int = Field(default=365, ge=1)
    # Server-side dedupe window for Nats-Msg-Id; covers a relay that was down this long.
    stream_duplicate_window_hours: int = Field(default=24, ge=1)
    consumer_max_deliver: int = Field(default=6, ge=1)
    consumer_ack_wait_seconds: float = Field(default=60.0, gt=0)
    # Delays between redeliveries of a failed message; the last one repeats.
    consumer_backoff_seconds: list[float] = [1.0, 5.0, 30.0, 120.0]

    # Requests one service process answers at once (commands and queries).
    endpoint_concurrency: int = Field(default=16, ge=1, le=256)

    # Outbox relay
    outbox_batch_size: int = Field(default=100, ge=1, le=1000)
    outbox_poll_seconds: float = Field(default=0.2, gt=0)
    outbox_claim_timeout_seconds: float = Field(default=30.0, gt=0)

    # How long the audit trail of commands is kept.
    audit_retention_days: int = Field(default=730, ge=1)
    # How long a finished job (its report) can still be looked up.
    job_retention_days: int = Field(default=90, ge=1)
    # How long a dead letter (and a failed try) is kept for an operator to look at; the
    # dead-letter stream's max_age is the same.
    dead_letter_retention_days: int = Field(default=90, ge=1)
    # Seconds between two rounds of the retention purge (tests make it short).
    retention_purge_seconds: float = Field(default=3600.0, gt=0)

    # Tests only: a file with an ISO instant the clocks of the services jump to.
    clock_file: Path | None = None

    # Prometheus metrics at http://<metrics_host>:<metrics_port>/metrics; 0: not served.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Loopback by default; a container sets 0.0.0.0 for the scraper to reach it.
    metrics_host: str = "127.0.0.1"
    # How often the backlog gauges (outbox, dead letters, consumer lag) are read.
    metrics_sample_seconds: float = Field(default=15.0, gt=0)

    def database_for(self, service: str) -> str:
        return self.mongo_database or f"samskab_{service}"


class SenderSettings(BaseSettings):
    """Who the network's mail and calendar entries come from (newsletter and events)."""

    model_config = SettingsConfigDict(env_prefix="SAMSKAB_", env_file=".env", extra="ignore")

    mail_from_address: str = "ambassadoer@fredericia.example"
    mail_from_name: str = "Ambassadørnetværket, Fredericia Kommune"
    # Domain part of every Message-ID and calendar UID we generate.
    mail_message_id_domain: str = "samskab.fredericia.example"


# A key that signs the tokens mails carry (services/runtime/tokens.py): long enough that
# guessing is hopeless (`openssl rand -hex 32`), and no default, so a service without it
# refuses to start instead of signing with something everybody knows.
TokenSecret = Annotated[SecretStr, Field(min_length=32)]
