"""The Graph API calls the social service makes, over httpx, each answer validated.

Only what we use: upload an unpublished photo, post on the Page's feed with the photos
attached, list the Page's recent published posts (to find out whether an attempt went
through), delete a post, and check the token. A call that does not come back as a valid
answer raises :class:`GraphError` carrying a :class:`~services.social.meta_errors.GraphFailure`
(the caller decides by :func:`~services.social.meta_errors.classify`).

The Page access token travels in the ``Authorization`` header, never in a URL we build (so
no access log of ours shows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.social.meta_errors import GraphFailure, Usage, failure_from_body, usage

M = TypeVar("M", bound=BaseModel)

# The look-up of recent posts reads at most this many pages of 100.
LOOKUP_PAGES = 5


class GraphError(Exception):
    def __init__(self, failure: GraphFailure) -> None:
        super().__init__(failure.describe())
        self.failure = failure


class Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreatedAnswer(Answer):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[0-9_]+$")


class DeletedAnswer(Answer):
    success: bool


class PagePost(Answer):
    id: str = Field(min_length=1, max_length=100)
    message: str | None = None
    created_time: datetime


class Paging(Answer):
    next: str | None = None


class PostsAnswer(Answer):
    data: list[PagePost]
    paging: Paging | None = None


class MeAnswer(Answer):
    id: str = Field(min_length=1, max_length=100)
    name: str | None = None


@dataclass(frozen=True)
class Photo:
    data: bytes
    filename: str
    content_type: str
    alt: str | None


def _headers(response: httpx.Response) -> dict[str, str]:
    return dict(response.headers.items())


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        page_id: str,
        token: str,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.page_id = page_id
        self.version = version
        self._http = httpx.AsyncClient(
            base_url=f"{base_url.rstrip('/')}/{version}/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            follow_redirects=False,
        )
        # The last usage the API reported: the publisher slows down past ~90 %.
        self.last_usage = Usage()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, answer: type[M], **kwargs: Any) -> M:
        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise GraphError(
                GraphFailure(kind="unreachable", message=str(exc) or "no connection")
            ) from None
        except httpx.TimeoutException as exc:
            raise GraphError(
                GraphFailure(kind="timeout", message=str(exc) or "no answer in time")
            ) from None
        except httpx.HTTPError as exc:
            # The request may have arrived: the connection broke while we waited.
            raise GraphError(
                GraphFailure(kind="timeout", message=f"{type(exc).__name__}: {exc}")
            ) from None
        headers = _headers(response)
        self.last_usage = usage(headers)
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if response.status_code >= 400 or body is None:
            raise GraphError(
                failure_from_body(
                    response.status_code,
                    body,
                    headers,
                    f"HTTP {response.status_code}: {response.text[:300]}",
                )
            )
        try:
            return answer.model_validate(body)
        except ValidationError as exc:
            raise GraphError(
                GraphFailure(
                    kind="broken",
                    status=response.status_code,
                    message=f"unexpected answer: {exc.errors()[0]['msg']}",
                    usage=self.last_usage,
                )
            ) from None

    async def upload_photo(self, photo: Photo) -> str:
        """An unpublished photo on the Page (invisible until a post attaches it); uploading
        the same picture again is harmless."""
        data: dict[str, str] = {"published": "false"}
        if photo.alt:
            data["alt_text_custom"] = photo.alt
        created = await self._call(
            "POST",
            f"{self.page_id}/photos",
            CreatedAnswer,
            data=data,
            files={"source": (photo.filename, photo.data, photo.content_type)},
        )
        return created.id

    async def post(self, message: str, *, link: str | None, media_ids: list[str]) -> str:
        """One post on the Page's feed; the photos attached in their order. Not idempotent."""
        data: dict[str, str] = {"message": message}
        if link:
            data["link"] = link
        for number, media_id in enumerate(media_ids):
            data[f"attached_media[{number}]"] = json.dumps({"media_fbid": media_id})
        created = await self._call("POST", f"{self.page_id}/feed", CreatedAnswer, data=data)
        return created.id

    async def recent_posts(self, since: datetime) -> list[PagePost]:
        """The Page's published posts created since ``since``, newest first."""
        params: dict[str, str] = {
            "since": str(int(since.astimezone(UTC).timestamp())),
            "fields": "id,message,created_time",
            "limit": "100",
        }
        found: list[PagePost] = []
        page = await self._call(
            "GET", f"{self.page_id}/published_posts", PostsAnswer, params=params
        )
        for _ in range(LOOKUP_PAGES):
            found.extend(page.data)
            following = page.paging.next if page.paging else None
            if not following or not page.data:
                break
            if httpx.URL(following).host != self._http.base_url.host:
                # The token goes with every call: never to a host that is not the API's.
                raise GraphError(GraphFailure(kind="broken", message="paging left the API"))
            # Meta's next link is absolute and carries its own parameters.
            page = await self._call("GET", following, PostsAnswer)
        return found

    async def delete_post(self, post_id: str) -> None:
        deleted = await self._call("DELETE", post_id, DeletedAnswer)
        if not deleted.success:
            raise GraphError(GraphFailure(kind="broken", message="the post was not deleted"))

    async def check_token(self) -> MeAnswer:
        """Who the token is (a Page token answers as the Page): it works."""
        return await self._call("GET", "me", MeAnswer, params={"fields": "id,name"})
