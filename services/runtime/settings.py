"""The one settings object every service, the CLI and the embedded stack read.

All values come from the environment with the prefix ``SAMSKAB_`` (or a ``.env`` file);
docker-compose sets the same names.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAMSKAB_", env_file=".env", extra="ignore")

    # Connections
    nats_url: str = "nats://127.0.0.1:4222"
    # HTTP monitoring port of the embedded nats-server (make up); health and /varz.
    nats_monitor_port: int = 8222
    nats_user: str | None = None
    nats_password: str | None = None
    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    # Empty means "samskab_<service>": every service owns its own database.
    mongo_database: str = ""

    # Logging
    log_format: str = Field(default="console", pattern="^(console|json)$")
    log_level: str = "INFO"

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

    # Ambassadors
    goal_ambassadors: int = Field(default=150, ge=1)
    goal_citizen_share: float = Field(default=0.20, ge=0, le=1)
    confirmation_token_ttl_hours: int = Field(default=72, ge=1)
    consent_text_version: str = "2026-11"
    certificate_bucket: str = "certificates"
    demo_import: bool = True
    demo_csv: Path | None = None

    # Mail (the embedded stack runs an SMTP sink here; docker-compose uses Mailpit)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # none: plain SMTP (the local sink, Mailpit); starttls: upgrade on 587; tls: implicit TLS 465.
    smtp_security: str = Field(default="none", pattern="^(none|starttls|tls)$")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_from_address: str = "ambassadoer@fredericia.example"
    mail_from_name: str = "Ambassadørnetværket, Fredericia Kommune"
    # The mailto half of List-Unsubscribe; the https half is built from public_url.
    mail_unsubscribe_mailto: str = "afmeld@fredericia.example"
    # Domain part of every Message-ID we generate.
    mail_message_id_domain: str = "samskab.fredericia.example"
    # Open SMTP connections at once, and mails per second over all of them (0: no limit).
    mail_concurrency: int = Field(default=4, ge=1, le=64)
    mail_rate_per_second: float = Field(default=0.0, ge=0)
    # Mails claimed per delivery round (an issue is queued in batches of this many), and how
    # long a claim holds before a crash is assumed.
    mail_batch_size: int = Field(default=200, ge=1, le=1000)
    mail_send_lease_seconds: float = Field(default=120.0, gt=0)
    # 4xx answers: retried after these delays (the last repeats) up to mail_max_attempts.
    mail_max_attempts: int = Field(default=8, ge=1)
    mail_retry_backoff_seconds: list[float] = [30.0, 120.0, 600.0, 1800.0, 3600.0]
    # 5xx answers: after this many hard failures in a row the address is "bouncing".
    mail_hard_bounce_limit: int = Field(default=3, ge=1)

    # Newsletter
    newsletter_token_ttl_hours: int = Field(default=72, ge=1)
    # A draft without --since gathers what happened since the last sent issue, or this long.
    newsletter_default_since_days: int = Field(default=90, ge=1)
    newsletter_image_max_bytes: int = Field(default=3_000_000, ge=1)
    # Delivery batches an issue's fan-out reads subscribers for and writes at once.
    newsletter_fanout_page: int = Field(default=10, ge=1, le=100)

    # Events (meetings)
    # Who said yes is reminded this long before the start (absolute time, across DST).
    events_reminder_hours: float = Field(default=48.0, gt=0, le=24 * 30)
    # How often due reminders and unfinished invitation rounds are looked for.
    events_poll_seconds: float = Field(default=5.0, gt=0)
    # Invitees per round of a meeting's invitation fan-out (one transaction each).
    events_fanout_batch: int = Field(default=100, ge=1, le=1000)

    # Tests only: a file with an ISO instant the clocks of the services jump to.
    clock_file: Path | None = None

    # Embedded stack (make up)
    data_dir: Path = Path("var")
    services: list[str] = ["ambassadors", "newsletter", "events"]

    # Request/reply timeout the CLI and services use when they ask another service.
    request_timeout_seconds: float = Field(default=10.0, gt=0)

    def database_for(self, service: str) -> str:
        return self.mongo_database or f"samskab_{service}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
