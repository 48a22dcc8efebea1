"""The social service's options, on the common service settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from services.runtime.settings import ServiceSettings, TokenSecret


class SocialSettings(ServiceSettings):
    # Signs each ambassador's personal "send a story" link; the newsletter service holds
    # the same secret to put the link in the welcome mail and every digest.
    social_token_secret: TokenSecret

    # The Graph API: the real one in production, the stand-in (stack/facebook.py) for
    # make up and the tests. The version is pinned: an expired one would silently be
    # served by a newer one.
    facebook_graph_url: str = "https://graph.facebook.com"
    facebook_graph_version: str = Field(default="v26.0", pattern=r"^v[0-9]{1,3}\.[0-9]$")
    facebook_page_id: SecretStr
    facebook_page_token: SecretStr
    facebook_timeout_seconds: float = Field(default=20.0, gt=0, le=300)

    # How often due stories are looked for.
    social_poll_seconds: float = Field(default=5.0, gt=0)
    # An attempt's lease: a publisher that died is taken over once it ran out (longer than
    # the slowest publish: ten uploads and the feed call, each within the time-out).
    social_publish_lease_seconds: float = Field(default=300.0, gt=0)
    # How often the Page token is checked (and publishing resumed when it works again).
    social_token_check_seconds: float = Field(default=3600.0, gt=0)
    # A look-up for an attempt's post searches from this long before the feed call
    # (the clocks of Facebook and ours differ a little).
    social_lookup_margin_seconds: float = Field(default=300.0, ge=0)
    # Unknown outcomes whose post was then not found: after this many, staff decide.
    social_max_unknown_outcomes: int = Field(default=3, ge=1, le=20)
    # Back-off of a publish put off (rate limit, a transient error).
    social_retry_base_seconds: float = Field(default=30.0, gt=0)
    social_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Past this share of a usage limit the publisher waits before its next call.
    social_usage_slowdown_percent: float = Field(default=90.0, gt=0, le=100)

    # Pictures: an upload larger than this is refused before it is read; what is kept is
    # a JPEG of at most 2048 px on its long side and under 4 MB (what Meta keeps anyway).
    social_upload_max_bytes: int = Field(default=25_000_000, ge=100_000)
    social_picture_max_bytes: int = Field(default=4_000_000, ge=100_000)
    social_picture_long_side: int = Field(default=2048, ge=200, le=8192)
    social_picture_max_pixels: int = Field(default=40_000_000, ge=1_000_000)

    @property
    def publish_lease(self) -> timedelta:
        return timedelta(seconds=self.social_publish_lease_seconds)
