"""The newsletter service's options (mail delivery and the newsletter itself), on the common
service settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from services.runtime.settings import SenderSettings, ServiceSettings, TokenSecret


class NewsletterSettings(ServiceSettings, SenderSettings):
    # Mail (the embedded stack runs an SMTP sink here; docker-compose uses Mailpit)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    # none: plain SMTP (the local sink, Mailpit); starttls: upgrade on 587; tls: implicit TLS 465.
    smtp_security: str = Field(default="none", pattern="^(none|starttls|tls)$")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # The mailto half of List-Unsubscribe; the https half is built from public_url.
    mail_unsubscribe_mailto: str = "afmeld@fredericia.example"
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
    # How long the record of a mail sent (or given up on) is kept: to whom, what, when.
    sent_mail_retention_days: int = Field(default=730, ge=1)

    # Newsletter
    newsletter_token_ttl_hours: int = Field(default=72, ge=1)
    # Confirmation mails one address may be sent a day, however often it is subscribed.
    newsletter_confirmation_mails_per_day: int = Field(default=3, ge=1, le=20)
    # A draft without --since gathers what happened since the last sent issue, or this long.
    newsletter_default_since_days: int = Field(default=90, ge=1)
    newsletter_image_max_bytes: int = Field(default=3_000_000, ge=1)
    # Delivery batches an issue's fan-out reads subscribers for and writes at once.
    newsletter_fanout_page: int = Field(default=10, ge=1, le=100)

    # The tokens the mails carry are minted here, when a mail is put together, and signed:
    # subscription links with our own secret, confirmation links with the ambassadors
    # service's, answer links with the events service's (each verifies its own).
    newsletter_token_secret: TokenSecret
    ambassadors_token_secret: TokenSecret
    events_token_secret: TokenSecret
    # Where the project leaders are told about their networks (a declined invitation and
    # its replacement, an end date near); empty: the sender address, the strategy's mailbox.
    staff_address: str = ""
    # Signs the answer links of network invitations (the networks service checks them).
    networks_token_secret: TokenSecret
    # Signs each ambassador's personal "send a story" link (the social service checks it).
    social_token_secret: TokenSecret
