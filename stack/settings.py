"""What the embedded stack (``make up``) is configured with: its own options, and those of
every service it runs (it passes them on to each as ``SAMSKAB_*`` variables)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from services import registry
from services.ambassadors.settings import AmbassadorsSettings
from services.events.settings import EventsSettings
from services.networks.settings import NetworksSettings
from services.newsletter.settings import NewsletterSettings
from services.social.settings import SocialSettings
from stack.facebook import DEFAULT_PAGE_ID

# The keys that sign the tokens mails carry; generated once per data directory.
SECRET_FIELDS = (
    "ambassadors_token_secret",
    "events_token_secret",
    "networks_token_secret",
    "newsletter_token_secret",
    "social_token_secret",
    "web_csrf_secret",
    # The one Page token the Graph API stand-in accepts (and the social service sends).
    "facebook_page_token",
)
SECRETS_FILE = "secrets.json"


class StackSettings(
    AmbassadorsSettings, EventsSettings, NetworksSettings, NewsletterSettings, SocialSettings
):
    # HTTP monitoring port of the embedded nats-server; health and /varz.
    nats_monitor_port: int = 8222
    # Where make up keeps data, logs and mail.
    data_dir: Path = Path("var")
    # The services to run, in start order.
    services: list[str] = Field(default_factory=registry.built)
    # Run the public website (python -m web) at public_url, after the services.
    web: bool = True
    # Where it listens; unset: the public URL's port (8000 without one).
    web_port: int | None = Field(default=None, ge=1, le=65535)
    web_csrf_secret: SecretStr | None = None
    # The Graph API stand-in (stack/facebook.py): where it listens; the Page it plays.
    facebook_port: int = Field(default=8300, ge=1, le=65535)
    facebook_page_id: SecretStr = SecretStr(DEFAULT_PAGE_ID)
    # Prometheus metrics of each process on loopback, from this port up in the registry's
    # order (ambassadors 9460 ... social 9464, the website after them); 0: none served.
    metrics_base_port: int = Field(default=9460, ge=0, le=65000)

    # Not required here: a first start generates them (see secrets_for).
    ambassadors_token_secret: SecretStr | None = None  # type: ignore[assignment]
    events_token_secret: SecretStr | None = None  # type: ignore[assignment]
    networks_token_secret: SecretStr | None = None  # type: ignore[assignment]
    newsletter_token_secret: SecretStr | None = None  # type: ignore[assignment]
    social_token_secret: SecretStr | None = None  # type: ignore[assignment]
    facebook_page_token: SecretStr | None = None  # type: ignore[assignment]


def secrets_for(settings: StackSettings, data_dir: Path) -> dict[str, str]:
    """The token secrets the services get: those configured, else the ones this data
    directory was first started with (generated then, kept in ``secrets.json``, readable by
    its owner only), so that links in mails already sent keep working after a restart."""
    path = data_dir / SECRETS_FILE
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    chosen: dict[str, str] = {}
    for field in SECRET_FIELDS:
        configured: SecretStr | None = getattr(settings, field)
        if configured is not None:
            chosen[field] = configured.get_secret_value()
        else:
            chosen[field] = str(stored.get(field) or secrets.token_hex(32))
    if any(stored.get(f) != chosen[f] for f in SECRET_FIELDS if getattr(settings, f) is None):
        data_dir.mkdir(parents=True, exist_ok=True)
        keep = {f: chosen[f] for f in SECRET_FIELDS if getattr(settings, f) is None}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**stored, **keep}, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return chosen
