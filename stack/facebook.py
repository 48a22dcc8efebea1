"""A local stand-in for the Facebook Graph API: exactly the endpoints the social service
calls, with Meta's answers, error shapes and usage headers.

The embedded stack (``make up``) and the tests point ``SAMSKAB_FACEBOOK_GRAPH_URL`` here;
production points it at ``https://graph.facebook.com`` and nothing else changes. Run it
with ``python -m stack.facebook --host H --port P --dir DIR``; the Page id and the one
Page access token it accepts come from ``SAMSKAB_FACEBOOK_PAGE_ID`` and
``SAMSKAB_FACEBOOK_PAGE_TOKEN`` (never the command line, which ``ps`` shows).

Endpoints (under ``/v<major>.<minor>/``):
- ``POST {page}/photos``: multipart ``source`` (the file), ``published=false``,
  ``alt_text_custom`` -> ``{"id"}``; the file is kept under ``photos/``.
- ``POST {page}/feed``: ``message``, ``link``, ``attached_media[n]={"media_fbid": id}``
  -> ``{"id": "<page>_<n>"}``. Each post is one JSON file under ``posts/`` (message, link,
  the pictures' files and alt texts, time). The same message as the last post, within ten
  minutes, is refused with Meta's 506 "Duplicate status message".
- ``GET {page}/published_posts?since&fields&limit&after`` -> ``{"data", "paging"}``.
- ``DELETE {post}`` -> ``{"success": true}`` (100/33 when there is no such post).
- ``GET me?fields=id,name`` -> the Page.

Faults, for tests, are set over HTTP at ``/_standin/faults`` (see :class:`Fault`):
time-outs (before, or after the post was created), Meta error codes (transient, rate
limits with ``estimated_time_to_regain_access``, an expired token), and 500s.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.runtime.clock import Clock
from stack.processes import ManagedProcess

log = logging.getLogger("stack.facebook")

PAGE_ID_ENV = "SAMSKAB_FACEBOOK_PAGE_ID"
TOKEN_ENV = "SAMSKAB_FACEBOOK_PAGE_TOKEN"
# Tests only: the file the services' clocks travel by (services/runtime/clock.py).
CLOCK_FILE_ENV = "SAMSKAB_CLOCK_FILE"
VARIABLES = (PAGE_ID_ENV, TOKEN_ENV)
DEFAULT_PAGE_ID = "104000000000001"
PAGE_NAME = "Ambassadørnetværket (stand-in)"
# What the stand-in's usage headers count against (calls per rolling hour).
HOURLY_CALLS = 4800
DUPLICATE_WINDOW_SECONDS = 600
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_MESSAGE = 63206
ENDPOINTS = ("photos", "feed", "published_posts", "delete", "me")


class Fault(BaseModel):
    """One injected misbehaviour: applied to every ``every``-th call of endpoint ``on``
    from when it was set, at most ``times`` times (None: always)."""

    model_config = ConfigDict(extra="forbid")

    on: str = Field(pattern="^(photos|feed|published_posts|delete|me)$")
    # timeout: no answer for ``delay`` seconds, nothing done; timeout_after_create: the
    # post (or photo) is created, then no answer for ``delay`` seconds; error: Meta's
    # error body with ``code`` (and ``subcode``, ``status``); http_500: a bare 500.
    action: str = Field(pattern="^(timeout|timeout_after_create|error|http_500)$")
    every: int = Field(default=1, ge=1)
    times: int | None = Field(default=None, ge=1)
    delay: float = Field(default=30.0, ge=0, le=600)
    code: int = 1
    subcode: int | None = None
    status: int = Field(default=400, ge=400, le=599)
    message: str = "An unknown error occurred"
    is_transient: bool | None = None
    # Sent as estimated_time_to_regain_access in X-Business-Use-Case-Usage.
    regain_minutes: int | None = None
    seen: int = 0
    applied: int = 0


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _new_id() -> str:
    return str(10**14 + secrets.randbelow(9 * 10**14))


def _trace() -> str:
    return secrets.token_urlsafe(8)


class StandIn:
    def __init__(
        self,
        directory: Path,
        page_id: str,
        token: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # Facebook's time: the tests' travelled time too (SAMSKAB_CLOCK_FILE), so that the
        # posts' created_time is on the clock the services look them up by.
        self.now = clock
        self.dir = directory
        self.page_id = page_id
        self.token = token
        self.token_expired = False
        self.faults: list[Fault] = []
        self.calls: list[float] = []
        self.regain_minutes = 0
        for sub in ("posts", "photos"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ answers

    def usage_headers(self) -> dict[str, str]:
        hour_ago = time.monotonic() - 3600
        self.calls = [t for t in self.calls if t > hour_ago]
        percent = min(100, round(100 * len(self.calls) / HOURLY_CALLS))
        if self.regain_minutes:
            percent = 100
        business = {
            self.page_id: [
                {
                    "type": "pages",
                    "call_count": percent,
                    "total_cputime": max(1, percent // 2),
                    "total_time": max(1, percent // 2),
                    "estimated_time_to_regain_access": self.regain_minutes,
                }
            ]
        }
        return {
            "X-App-Usage": json.dumps({"call_count": percent, "total_cputime": 1, "total_time": 1}),
            "X-Business-Use-Case-Usage": json.dumps(business),
        }

    def answer(self, body: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=self.usage_headers())

    def error(
        self,
        code: int,
        message: str,
        *,
        status: int = 400,
        subcode: int | None = None,
        kind: str = "OAuthException",
        is_transient: bool | None = None,
        user_message: str | None = None,
    ) -> JSONResponse:
        error: dict[str, Any] = {
            "message": message,
            "type": kind,
            "code": code,
            "fbtrace_id": _trace(),
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        if is_transient is not None:
            error["is_transient"] = is_transient
        if user_message:
            error["error_user_title"] = "Fejl"
            error["error_user_msg"] = user_message
        return self.answer({"error": error}, status)

    def fault_answer(self, fault: Fault) -> Response:
        if fault.action == "http_500":
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        if fault.regain_minutes is not None:
            self.regain_minutes = fault.regain_minutes
        transient = fault.is_transient
        if transient is None and fault.code in (1, 2):
            transient = True
        return self.error(
            fault.code,
            fault.message if fault.message else f"(#{fault.code}) error",
            status=fault.status,
            subcode=fault.subcode,
            is_transient=transient,
        )

    def fault_for(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if fault.on != endpoint or (fault.times is not None and fault.applied >= fault.times):
                continue
            fault.seen += 1
            if fault.seen % fault.every == 0:
                fault.applied += 1
                return fault
        return None

    def authorised(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else None
        given = given or request.query_params.get("access_token")
        if not given:
            return self.error(
                2500,
                "An active access token must be used to query information about the current user.",
            )
        if not secrets.compare_digest(given, self.token):
            return self.error(190, "Invalid OAuth access token - Cannot parse access token")
        if self.token_expired:
            return self.error(
                190,
                "Error validating access token: Session has expired.",
                subcode=463,
            )
        return None

    # ------------------------------------------------------------------ storage

    def photo_path(self, photo_id: str) -> Path:
        return self.dir / "photos" / f"{photo_id}.json"

    def load_photo(self, photo_id: str) -> dict[str, Any] | None:
        path = self.photo_path(photo_id)
        if not photo_id.isdigit() or not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def posts(self) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in (self.dir / "posts").glob("*.json")]
        return sorted(found, key=lambda p: (p["created_time"], p["id"]), reverse=True)

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2))
        os.replace(tmp, path)

    # ------------------------------------------------------------------ endpoints

    def check_page(self, page: str) -> JSONResponse | None:
        if page != self.page_id:
            return self.error(
                100,
                f"(#100) Unsupported request: object with ID '{page}' does not exist or "
                "cannot be loaded due to missing permissions",
                subcode=33,
                kind="GraphMethodException",
            )
        return None

    async def photos(self, request: Request) -> Response:
        page = request.path_params["page"]
        refused = self.authorised(request) or self.check_page(page)
        if refused:
            return refused
        fault = self.fault_for("photos")
        if fault and fault.action == "timeout":
            await asyncio.sleep(fault.delay)
            return self.fault_answer(fault.model_copy(update={"action": "http_500"}))
        if fault and fault.action in ("error", "http_500"):
            return self.fault_answer(fault)
        form = await request.form(max_files=1, max_fields=20, max_part_size=MAX_PHOTO_BYTES)
        source = form.get("source")
        if not isinstance(source, UploadFile):
            return self.error(324, "(#324) Requires upload file", kind="OAuthException")
        data = await source.read()
        if len(data) > MAX_PHOTO_BYTES:
            return self.error(100, "(#100) Photo file is too large", subcode=1366046)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or "JPEG"
                size = image.size
        except (UnidentifiedImageError, OSError):
            return self.error(
                100,
                "(#100) Photo format is not supported",
                subcode=1366046,
                user_message="Billedformatet understøttes ikke.",
            )
        photo_id = _new_id()
        published = str(form.get("published", "true")).lower() != "false"
        extension = "jpg" if image_format == "JPEG" else image_format.lower()
        file_name = f"{photo_id}.{extension}"
        (self.dir / "photos" / file_name).write_bytes(data)
        alt = form.get("alt_text_custom")
        self.write_json(
            self.photo_path(photo_id),
            {
                "id": photo_id,
                "file": f"photos/{file_name}",
                "alt_text": alt if isinstance(alt, str) else None,
                "published": published,
                "width": size[0],
                "height": size[1],
                "created_time": _graph_time(self.now()),
            },
        )
        if fault and fault.action == "timeout_after_create":
            await asyncio.sleep(fault.delay)
        answer: dict[str, Any] = {"id": photo_id}
        if published:
            answer["post_id"] = f"{self.page_id}_{photo_id}"
        return self.answer(answer)

    async def feed(self, request: Request) -> Response:
        page = request.path_params["page"]
        refused = self.authorised(request) or self.check_page(page)
        if refused:
            return refused
        fault = self.fault_for("feed")
        if fault and fault.action == "timeout":
            await asyncio.sleep(fault.delay)
            return self.fault_answer(fault.model_copy(update={"action": "http_500"}))
        if fault and fault.action in ("error", "http_500"):
            return self.fault_answer(fault)
        form = await request.form(max_files=0, max_fields=50)
        message = str(form.get("message") or "")
        link = str(form.get("link") or "") or None
        media: list[str] = []
        number = 0
        while f"attached_media[{number}]" in form:
            try:
                item = json.loads(str(form[f"attached_media[{number}]"]))
                media.append(str(item["media_fbid"]))
            except (ValueError, KeyError, TypeError):
                return self.error(100, "(#100) param attached_media must be an array of objects")
            number += 1
        if not message and not link and not media:
            return self.error(100, "(#100) Missing message or attachment")
        if len(message) > MAX_MESSAGE:
            return self.error(100, "(#100) The message is too long")
        pictures = []
        for media_id in media:
            photo = self.load_photo(media_id)
            if photo is None or photo.get("attached_to"):
                return self.error(
                    100, f"(#100) Invalid media_fbid {media_id}", kind="OAuthException"
                )
            pictures.append(photo)
        last = next((p for p in self.posts() if not p.get("deleted")), None)
        now = self.now()
        if last is not None and last["message"] == message and message:
            created = datetime.strptime(last["created_time"], "%Y-%m-%dT%H:%M:%S%z")
            if (now - created).total_seconds() < DUPLICATE_WINDOW_SECONDS:
                return self.error(506, "(#506) Duplicate status message")
        post_id = f"{self.page_id}_{_new_id()}"
        for photo in pictures:
            photo["attached_to"] = post_id
            self.write_json(self.photo_path(photo["id"]), photo)
        self.write_json(
            self.dir / "posts" / f"{post_id}.json",
            {
                "id": post_id,
                "message": message,
                "link": link,
                "created_time": _graph_time(now),
                "pictures": [
                    {"id": p["id"], "file": p["file"], "alt_text": p.get("alt_text")}
                    for p in pictures
                ],
                "deleted": False,
            },
        )
        log.info("post %s created (%d pictures)", post_id, len(pictures))
        if fault and fault.action == "timeout_after_create":
            await asyncio.sleep(fault.delay)
        return self.answer({"id": post_id})

    async def published_posts(self, request: Request) -> Response:
        page = request.path_params["page"]
        refused = self.authorised(request) or self.check_page(page)
        if refused:
            return refused
        fault = self.fault_for("published_posts")
        if fault and fault.action == "timeout":
            await asyncio.sleep(fault.delay)
            return self.fault_answer(fault.model_copy(update={"action": "http_500"}))
        if fault:
            return self.fault_answer(fault)
        params = request.query_params
        try:
            since = int(params.get("since", "0"))
            limit = min(100, max(1, int(params.get("limit", "25"))))
            after = int(params.get("after", "0"))
        except ValueError:
            return self.error(100, "(#100) Invalid parameter")
        fields = set((params.get("fields") or "id,created_time").split(","))
        chosen = []
        for post in self.posts():
            created = datetime.strptime(post["created_time"], "%Y-%m-%dT%H:%M:%S%z")
            if post.get("deleted") or created.timestamp() < since:
                continue
            chosen.append(post)
        window = chosen[after : after + limit]
        data = [
            {k: v for k, v in post.items() if k in fields | {"id"} and v is not None}
            for post in window
        ]
        body: dict[str, Any] = {"data": data}
        if after + limit < len(chosen):
            query = dict(params)
            query["after"] = str(after + limit)
            query.pop("access_token", None)
            encoded = "&".join(f"{k}={v}" for k, v in query.items())
            body["paging"] = {
                "next": f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{encoded}"
            }
        return self.answer(body)

    async def delete(self, request: Request) -> Response:
        refused = self.authorised(request)
        if refused:
            return refused
        fault = self.fault_for("delete")
        if fault:
            if fault.action == "timeout":
                await asyncio.sleep(fault.delay)
            return self.fault_answer(fault)
        post_id = request.path_params["object"]
        path = self.dir / "posts" / f"{post_id}.json"
        if "/" in post_id or not path.exists():
            return self._missing(post_id)
        post = json.loads(path.read_text())
        if post.get("deleted"):
            return self._missing(post_id)
        post["deleted"] = True
        post["deleted_time"] = _graph_time(self.now())
        self.write_json(path, post)
        return self.answer({"success": True})

    def _missing(self, object_id: str) -> JSONResponse:
        return self.error(
            100,
            f"(#100) Unsupported delete request. Object with ID '{object_id}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation",
            subcode=33,
            kind="GraphMethodException",
        )

    async def me(self, request: Request) -> Response:
        refused = self.authorised(request)
        if refused:
            return refused
        fault = self.fault_for("me")
        if fault:
            if fault.action == "timeout":
                await asyncio.sleep(fault.delay)
            return self.fault_answer(fault)
        return self.answer({"id": self.page_id, "name": PAGE_NAME})

    # ------------------------------------------------------------------ control

    async def set_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults = []
            self.regain_minutes = 0
            return JSONResponse({"faults": []})
        try:
            body = await request.json()
            faults = [Fault.model_validate(f) for f in body.get("faults", [])]
        except (ValueError, ValidationError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.faults = faults if body.get("replace", True) else [*self.faults, *faults]
        return JSONResponse({"faults": [f.model_dump() for f in self.faults]})

    async def set_token(self, request: Request) -> Response:
        body = await request.json()
        self.token_expired = body.get("state") == "expired"
        return JSONResponse({"expired": self.token_expired})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "page_id": self.page_id})

    def app(self) -> Starlette:
        def counted(handler: Any) -> Any:
            async def endpoint(request: Request) -> Response:
                self.calls.append(time.monotonic())
                response: Response = await handler(request)
                return response

            return endpoint

        version = "{version:str}"
        return Starlette(
            routes=[
                Route("/_standin/faults", self.set_faults, methods=["POST", "DELETE"]),
                Route("/_standin/token", self.set_token, methods=["POST"]),
                Route("/_standin/health", self.health, methods=["GET"]),
                Route(f"/{version}/me", counted(self.me), methods=["GET"]),
                Route(f"/{version}/{{page}}/photos", counted(self.photos), methods=["POST"]),
                Route(f"/{version}/{{page}}/feed", counted(self.feed), methods=["POST"]),
                Route(
                    f"/{version}/{{page}}/published_posts",
                    counted(self.published_posts),
                    methods=["GET"],
                ),
                Route(f"/{version}/{{object}}", counted(self.delete), methods=["DELETE"]),
            ]
        )


# ---------------------------------------------------------------- reading what it holds


def read_posts(directory: Path, *, include_deleted: bool = False) -> list[dict[str, Any]]:
    """The posts a stand-in stored under ``directory``, oldest first."""
    posts_dir = Path(directory) / "posts"
    if not posts_dir.exists():
        return []
    found = [json.loads(p.read_text()) for p in posts_dir.glob("*.json")]
    found = [p for p in found if include_deleted or not p.get("deleted")]
    return sorted(found, key=lambda p: (p["created_time"], p["id"]))


class FacebookStandIn(ManagedProcess):
    """``python -m stack.facebook`` as a child process, and its control endpoints."""

    def __init__(
        self,
        *,
        directory: Path,
        port: int,
        log_path: Path,
        page_id: str,
        token: str,
        host: str = "127.0.0.1",
        name: str = "facebook",
        clock_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.directory = Path(directory)
        self.page_id = page_id
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env[PAGE_ID_ENV] = page_id
        env[TOKEN_ENV] = token
        if clock_file is not None:
            env[CLOCK_FILE_ENV] = str(clock_file)
        super().__init__(
            name,
            [
                sys.executable,
                "-m",
                "stack.facebook",
                "--host",
                host,
                "--port",
                str(port),
                "--dir",
                str(self.directory),
            ],
            log_path=log_path,
            env=env,
            ready_check=self.is_ready,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def is_ready(self) -> bool:
        try:
            return bool(self._control("GET", "/_standin/health").get("ok"))
        except OSError:
            return False

    def inject(self, *faults: dict[str, Any], replace: bool = True) -> None:
        self._control("POST", "/_standin/faults", {"faults": list(faults), "replace": replace})

    def clear_faults(self) -> None:
        self._control("DELETE", "/_standin/faults")

    def expire_token(self, expired: bool = True) -> None:
        self._control("POST", "/_standin/token", {"state": "expired" if expired else "valid"})

    def posts(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        return read_posts(self.directory, include_deleted=include_deleted)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local stand-in for the Graph API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--dir", type=Path, default=Path("var/facebook"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        print(
            f"{TOKEN_ENV} is not set: the stand-in needs the one token it accepts", file=sys.stderr
        )
        return 2
    clock_file = os.environ.get(CLOCK_FILE_ENV)
    stand_in = StandIn(
        args.dir,
        os.environ.get(PAGE_ID_ENV) or DEFAULT_PAGE_ID,
        token,
        Clock(Path(clock_file) if clock_file else None),
    )
    config = uvicorn.Config(
        stand_in.app(), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    # uvicorn stops cleanly on SIGTERM and SIGINT by itself.
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
