"""The links a mail carries, signed when the mail is put together.

A queued mail's record says which link it needs (``LinkRef``: the purpose and the ids, plus
the nonce and expiry where the link has them): nothing secret, so the record may sit in the
database and be copied into a dead letter. Only when the delivery worker turns the record
into the message does :class:`Links` sign the token, with the secret of the service that
verifies it: the ambassadors service's for a sign-up confirmation, the events service's for
the answer links of an invitation, the networks service's for a network invitation's, our
own for subscriptions and unsubscribing. The token exists in the message and in nothing
we store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.events import Answer
from contracts.social import STORIES_PATH
from services.newsletter import domain
from services.newsletter.settings import NewsletterSettings
from services.runtime import tokens
from services.runtime.tokens import Signer

# Where a record's context names its link.
CONTEXT_KEY = "link"
# Where it names the ambassador whose own stories link it carries (any mail may, besides).
STORIES_KEY = "stories_for"


class LinkRef(BaseModel):
    """What a link is made of, short of its signature."""

    model_config = ConfigDict(frozen=True)

    purpose: str
    parts: tuple[str | int, ...]

    def to_context(self) -> dict[str, Any]:
        return {CONTEXT_KEY: {"purpose": self.purpose, "parts": list(self.parts)}}


def ambassador_confirmation(ambassador_id: str, nonce: str, expires_at: datetime) -> LinkRef:
    return LinkRef(
        purpose=tokens.AMBASSADOR_CONFIRMATION,
        parts=(ambassador_id, nonce, tokens.expiry(expires_at)),
    )


def subscription_confirmation(subscriber_id: str, nonce: str, expires_at: datetime) -> LinkRef:
    return LinkRef(
        purpose=tokens.SUBSCRIPTION_CONFIRMATION,
        parts=(subscriber_id, nonce, tokens.expiry(expires_at)),
    )


def answer(meeting_id: str, ambassador_id: str) -> LinkRef:
    return LinkRef(purpose=tokens.ANSWER, parts=(meeting_id, ambassador_id))


def network_answer(network_id: str, ambassador_id: str) -> LinkRef:
    return LinkRef(purpose=tokens.NETWORK_ANSWER, parts=(network_id, ambassador_id))


def alert_answer(alert_id: str, ambassador_id: str) -> LinkRef:
    return LinkRef(purpose=tokens.ALERT_ANSWER, parts=(alert_id, ambassador_id))


class Links:
    """Signs the links of the mails this service sends."""

    def __init__(self, settings: NewsletterSettings) -> None:
        self._public_url = settings.public_url
        self._signers = {
            tokens.AMBASSADOR_CONFIRMATION: Signer(
                settings.ambassadors_token_secret, tokens.AMBASSADOR_CONFIRMATION
            ),
            tokens.ANSWER: Signer(settings.events_token_secret, tokens.ANSWER),
            tokens.NETWORK_ANSWER: Signer(settings.networks_token_secret, tokens.NETWORK_ANSWER),
            tokens.ALERT_ANSWER: Signer(settings.networks_token_secret, tokens.ALERT_ANSWER),
            tokens.SUBSCRIPTION_CONFIRMATION: Signer(
                settings.newsletter_token_secret, tokens.SUBSCRIPTION_CONFIRMATION
            ),
            tokens.UNSUBSCRIBE: Signer(settings.newsletter_token_secret, tokens.UNSUBSCRIBE),
            tokens.STORY_LINK: Signer(settings.social_token_secret, tokens.STORY_LINK),
        }

    def signer(self, purpose: str) -> Signer:
        return self._signers[purpose]

    def unsubscribe_token(self, subscriber_id: str) -> str:
        return self._signers[tokens.UNSUBSCRIBE].sign(subscriber_id)

    def unsubscribe_url(self, subscriber_id: str) -> str:
        return domain.unsubscribe_url(self._public_url, self.unsubscribe_token(subscriber_id))

    def stories_url(self, ambassador_id: str) -> str:
        """The ambassador's own page for sending stories and seeing how they fare."""
        token = self._signers[tokens.STORY_LINK].sign(ambassador_id)
        return f"{self._public_url.rstrip('/')}{STORIES_PATH}/{token}"

    def resolve(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """A record's template context with its link signed: ``confirm_url`` and ``token``
        for a confirmation, ``rsvp`` (one link per answer, and the token) for an invitation;
        ``stories_url`` for a mail that names an ambassador under ``stories_for``."""
        resolved = {k: v for k, v in context.items() if k not in (CONTEXT_KEY, STORIES_KEY)}
        if context.get(STORIES_KEY):
            resolved["stories_url"] = self.stories_url(str(context[STORIES_KEY]))
        spec = context.get(CONTEXT_KEY)
        if not spec:
            return resolved
        ref = LinkRef.model_validate(spec)
        token = self._signers[ref.purpose].sign(*ref.parts)
        if ref.purpose == tokens.AMBASSADOR_CONFIRMATION:
            resolved |= {
                "token": token,
                "confirm_url": domain.ambassador_confirm_url(self._public_url, token),
            }
        elif ref.purpose == tokens.SUBSCRIPTION_CONFIRMATION:
            resolved |= {"token": token, "confirm_url": domain.confirm_url(self._public_url, token)}
        elif ref.purpose == tokens.ANSWER:
            resolved["rsvp"] = rsvp_links(self._public_url, token)
        elif ref.purpose == tokens.NETWORK_ANSWER:
            resolved["answer"] = {
                a: domain.network_answer_url(self._public_url, token, a) for a in ("ja", "nej")
            }
        elif ref.purpose == tokens.ALERT_ANSWER:
            resolved["answer"] = {
                a: domain.alert_answer_url(self._public_url, token, a) for a in ("ja", "nej")
            }
        return resolved


def rsvp_links(public_url: str, token: str) -> dict[str, str]:
    """The answer links of a mail: ``{public_url}/rsvp/{token}/yes`` etc., and the token
    (which the mail does not show: the links and their page are the way, and a reply to
    the mail the fallback, which staff record with ``samskab events rsvp``)."""
    links = {a.value: domain.rsvp_url(public_url, token, a.value) for a in Answer}
    return {**links, "token": token}
