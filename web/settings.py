"""The website's settings (``SAMSKAB_*``, like every process's)."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from services import registry
from services.runtime.settings import ClientSettings

# Its NATS user (and its process's name in the embedded stack).
WEB_USER = registry.WEB


def listen_port(public_url: str, web_port: int | None) -> int:
    """Where the website listens: ``web_port``, else the public URL's port, else 8000 (a
    proxy in front answers on 443)."""
    return web_port or urlsplit(public_url).port or 8000


class WebSettings(ClientSettings):
    embedded_user: ClassVar[str] = WEB_USER

    # Where the public reaches the site: the links in every mail start with it.
    public_url: str = "http://localhost:8000"
    # Where uvicorn listens; the port defaults to the public URL's (or 8000).
    web_host: str = "127.0.0.1"
    web_port: int | None = Field(default=None, ge=1, le=65535)
    # Signs the forms' CSRF tokens; make up generates one per data directory.
    web_csrf_secret: SecretStr
    # Per client (address) on sign-up, subscribe and the pages behind a mail's links.
    web_rate_limit: str = "30/minute"
    # A request body larger than this is refused before it is read.
    web_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Each picture sent with a story (at most contracts.social.PICTURES_MAX of them): the
    # story forms alone take a body of that many pictures (the social service takes up to
    # its own SAMSKAB_SOCIAL_UPLOAD_MAX_BYTES, 25 MB, and keeps a JPEG under 4 MB).
    web_story_picture_max_bytes: int = Field(default=15_000_000, ge=100_000, le=25_000_000)
    # Public pages may be served again by a proxy for this long.
    web_cache_seconds: int = Field(default=60, ge=0)
    # The services' answers that are the same for every visitor (the directory, the
    # calendar, the archive, the goals) are kept this long, so a burst of visitors asks each
    # service once; 0 asks every time. Well under web_cache_seconds, which a proxy may add.
    web_answer_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    # The website's Prometheus metrics, on a port of their own (0: not served).
    web_metrics_port: int = Field(default=0, ge=0, le=65535)
    web_metrics_host: str = "127.0.0.1"

    @property
    def https(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"

    @property
    def listen_port(self) -> int:
        return listen_port(self.public_url, self.web_port)
