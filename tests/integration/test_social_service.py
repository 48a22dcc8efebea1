"""The social service as a real process on real NATS and SecantusDB, fed by the real
ambassadors service, publishing over HTTP to the Graph API stand-in (a real process too):
a story sent with the CLI with two pictures goes out once, with its pictures and without
their metadata; a post whose answer times out is adopted, not made again; an expired token
pauses publishing until a check finds it working again."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from contracts import operations as ops
from contracts.ambassadors import Endpoints as AmbassadorEndpoints
from contracts.errors import ErrorCode, ServiceError
from contracts.operations import GetHealth
from contracts.social import (
    ApproveStory,
    CheckToken,
    Endpoints,
    GetOwnStories,
    GetPublishing,
    ScheduleStory,
    ShowStory,
    StoryStatus,
    SubmitStory,
)
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from services.social.links import StoryLinks
from stack.facebook import DEFAULT_PAGE_ID, FacebookStandIn
from stack.nats import NatsServer
from stack.processes import free_port
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import eventually, service_env, sign_up_payload
from tests.support.pictures import GPS_IFD, opened, photo
from tests.support.stack import TOKEN_SECRETS, venv_script

pytestmark = pytest.mark.integration


@pytest.fixture
def facebook(tmp_path: Path) -> Iterator[FacebookStandIn]:
    stand_in = FacebookStandIn(
        directory=tmp_path / "facebook",
        port=free_port(),
        log_path=tmp_path / "log" / "facebook.log",
        page_id=DEFAULT_PAGE_ID,
        token=TOKEN_SECRETS["SAMSKAB_FACEBOOK_PAGE_TOKEN"],
    )
    stand_in.start()
    stand_in.wait_ready(timeout=20)
    yield stand_in
    stand_in.stop()


@pytest.fixture
async def client(nats_server: NatsServer) -> Any:
    settings = ClientSettings(_env_file=None, nats_url=nats_server.url, request_timeout_seconds=15)
    found = ServiceClient(settings, actor="operator:tests")
    await found.connect()
    yield found
    await found.close()


def start_social(
    service_process: ServiceProcessFactory, facebook: FacebookStandIn, **env: str
) -> None:
    service_process("ambassadors", service_env(f"amb_{uuid.uuid4().hex[:8]}", None))
    service_process(
        "social",
        {
            "SAMSKAB_MONGO_DATABASE": f"soc_{uuid.uuid4().hex[:8]}",
            "SAMSKAB_FACEBOOK_GRAPH_URL": facebook.url,
            "SAMSKAB_SOCIAL_POLL_SECONDS": "0.3",
            "SAMSKAB_FACEBOOK_TIMEOUT_SECONDS": "1.5",
            **env,
        },
    )


async def active_ambassador(client: ServiceClient) -> str:
    payload = sign_up_payload(kind="association", organisation="Lektiecaféen", public=True)
    result = await client.call(
        AmbassadorEndpoints.REGISTER, AmbassadorEndpoints.REGISTER.request.model_validate(payload)
    )
    ambassador_id: str = result.ambassador.id
    return ambassador_id


def cli(nats_server: NatsServer, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(venv_script("samskab").parent) + ":/usr/bin:/bin",
        "HOME": str(data_dir),
        "SAMSKAB_NATS_URL": nats_server.url,
        "SAMSKAB_DATA_DIR": str(data_dir),
        "SAMSKAB_ACTOR": "integration",
    }
    return subprocess.run(
        [str(venv_script("samskab")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def known_to_social(client: ServiceClient, ambassador_id: str) -> None:
    """The social service's read model has the ambassador (their own link works)."""
    links = StoryLinks(SecretStr(TOKEN_SECRETS["SAMSKAB_SOCIAL_TOKEN_SECRET"]), "http://x")

    async def known() -> bool:
        try:
            await client.call(Endpoints.OWN, GetOwnStories(token=links.token(ambassador_id)))
        except ServiceError as exc:
            if exc.code == ErrorCode.INVALID_TOKEN:
                return False
            raise
        return True

    await eventually(known, what="the social service knows the ambassador")


async def sent_story(client: ServiceClient, ambassador_id: str, text: str) -> str:
    async def submit() -> str | None:
        try:
            receipt = await client.call(
                Endpoints.SUBMIT,
                SubmitStory.model_validate(
                    {"ambassador_id": ambassador_id, "kind": "theme_work", "text": text}
                ),
            )
        except Exception as exc:  # the read model has not caught up yet
            if "not an active ambassador" in str(exc):
                return None
            raise
        return receipt.story_id

    found: str = await eventually(submit, what="the social service knows the ambassador")
    return found


async def publish_now(client: ServiceClient, story_id: str) -> None:
    await client.call(Endpoints.APPROVE, ApproveStory(story_id=story_id))
    await client.call(Endpoints.SCHEDULE, ScheduleStory(story_id=story_id))


async def status_of(client: ServiceClient, story_id: str, *wanted: StoryStatus) -> Any:
    async def reached() -> Any:
        detail = await client.call(Endpoints.SHOW, ShowStory(story_id=story_id))
        return detail if detail.story.status in wanted else None

    return await eventually(reached, timeout=30, what=f"story {story_id} {wanted}")


async def test_a_story_sent_with_two_pictures_goes_out_once_without_their_metadata(
    service_process: ServiceProcessFactory,
    facebook: FacebookStandIn,
    client: ServiceClient,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    start_social(service_process, facebook)
    ambassador_id = await active_ambassador(client)
    await known_to_social(client, ambassador_id)
    (tmp_path / "story.txt").write_text(
        "Vi har fået to nye frivillige i lektiecaféen. Velkommen til dem!\n", encoding="utf-8"
    )
    for n, color in enumerate(((200, 40, 40), (40, 120, 200))):
        (tmp_path / f"billede{n}.jpg").write_bytes(photo(3000, 2000, color=color))
    args = [
        "social", "submit", "--ambassador", ambassador_id, "--kind", "new_person",
        "--title", "Nye frivillige", "--text", str(tmp_path / "story.txt"),
        "--image", str(tmp_path / "billede0.jpg"), "--alt", "To frivillige ved et bord",
        "--image", str(tmp_path / "billede1.jpg"), "--alt", "Børn med lektier",
    ]  # fmt: skip

    # Without the confirmation that those shown agreed, the guide stops it.
    async def refused() -> subprocess.CompletedProcess[str] | None:
        done = cli(nats_server, tmp_path, *args, "--json")
        return done if "people_consent" in done.stdout else None

    stopped = await eventually(refused, timeout=30, what="the guide's refusal")
    assert stopped.returncode == 1
    submitted = cli(nats_server, tmp_path, *args, "--people-consent", "--json")
    assert submitted.returncode == 0, submitted.stderr
    story_id = json.loads(submitted.stdout)["story_id"]
    review = cli(nats_server, tmp_path, "social", "review")
    assert story_id in review.stdout and "Nye frivillige" in review.stdout

    await publish_now(client, story_id)
    detail = await status_of(client, story_id, StoryStatus.PUBLISHED)
    [post] = facebook.posts()
    assert detail.story.post_id == post["id"]
    assert post["message"] == (
        "Nye frivillige\n\nVi har fået to nye frivillige i lektiecaféen. Velkommen til dem!"
    )
    assert [p["alt_text"] for p in post["pictures"]] == [
        "To frivillige ved et bord",
        "Børn med lektier",
    ]
    for picture in post["pictures"]:
        data = (facebook.directory / picture["file"]).read_bytes()
        image = opened(data)
        assert max(image.size) == 2048 and image.format == "JPEG"
        assert not image.getexif().get_ifd(GPS_IFD) and b"SpyCam" not in data
    shown = cli(nats_server, tmp_path, "social", "show", story_id)
    assert "published" in shown.stdout and post["id"] in shown.stdout


async def test_a_post_whose_answer_timed_out_is_adopted_not_made_again(
    service_process: ServiceProcessFactory, facebook: FacebookStandIn, client: ServiceClient
) -> None:
    start_social(service_process, facebook, SAMSKAB_SOCIAL_LOOKUP_MARGIN_SECONDS="60")
    ambassador_id = await active_ambassador(client)
    facebook.inject({"on": "feed", "action": "timeout_after_create", "delay": 5, "times": 1})
    story_id = await sent_story(client, ambassador_id, "Sommerlejr for 40 børn i uge 28.")
    await publish_now(client, story_id)
    detail = await status_of(client, story_id, StoryStatus.PUBLISHED)
    [post] = facebook.posts()
    assert detail.story.post_id == post["id"]
    assert detail.attempts[-1].outcome == "adopted"


async def test_an_expired_token_pauses_publishing_until_it_works_again(
    service_process: ServiceProcessFactory, facebook: FacebookStandIn, client: ServiceClient
) -> None:
    facebook.expire_token()
    start_social(service_process, facebook)

    async def paused() -> Any:
        state = await client.call(Endpoints.PUBLISHING, GetPublishing())
        return state if state.state == "paused" else None

    state = await eventually(paused, what="publishing paused by the start-up token check")
    assert "190" in (state.reason or "")
    # `samskab health` shows it: the service answers, but staff must act.
    health = await client.call(ops.health("social"), GetHealth())
    assert health.status == "degraded"
    assert "publishing to the Facebook Page is paused" in health.problems[0]
    ambassador_id = await active_ambassador(client)
    story_id = await sent_story(client, ambassador_id, "Julefrokost for frivillige.")
    await publish_now(client, story_id)
    await status_of(client, story_id, StoryStatus.SCHEDULED)
    assert facebook.posts() == []
    facebook.expire_token(False)
    checked = await client.call(Endpoints.CHECK_TOKEN, CheckToken())
    assert checked.state == "ok"
    await status_of(client, story_id, StoryStatus.PUBLISHED)
    assert len(facebook.posts()) == 1
    assert (await client.call(ops.health("social"), GetHealth())).status == "ok"
