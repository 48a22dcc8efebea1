"""Each ambassador's personal "send a story" link: a token signed with the social
secret (which the newsletter service also holds, to put the link in its mails). It needs
no storage and names only the ambassador; it works while they are an active ambassador."""

from __future__ import annotations

from pydantic import SecretStr

from contracts.errors import ErrorCode, ServiceError
from contracts.social import STORIES_PATH
from services.runtime import tokens
from services.runtime.tokens import Signer


class StoryLinks:
    def __init__(self, secret: SecretStr, public_url: str) -> None:
        self._signer = Signer(secret, tokens.STORY_LINK)
        self._public_url = public_url.rstrip("/")

    def token(self, ambassador_id: str) -> str:
        return self._signer.sign(ambassador_id)

    def url(self, ambassador_id: str) -> str:
        return f"{self._public_url}{STORIES_PATH}/{self.token(ambassador_id)}"

    def ambassador_of(self, token: str) -> str:
        parts = self._signer.parts(token, 1)
        if parts is None or not isinstance(parts[0], str):
            raise ServiceError(ErrorCode.INVALID_TOKEN, "the link is not valid")
        return parts[0]
