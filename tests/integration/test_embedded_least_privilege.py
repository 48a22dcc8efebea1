"""``make up``'s stack admits only its own users, each with the least it needs.

The embedded stack runs as ``samskab-stack`` builds it (every built service, no test user):
nats-server with the accounts generated from the registry (the same text as
deploy/nats/accounts.conf) and a password per user generated under ``var/credentials/``.
An attacker on this machine tries the three forgeries that used to work (an ``erased`` for
an active ambassador, an ``invited`` to an outside address, an ``activated`` naming another
person's certificate): anonymously, and with each user's credentials but the owner's. The
server refuses every one, the streams hold none of them, and no mail goes out.
"""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.ambassadors import VerifyCertificate
from contracts.operations import GetHealth, health
from services import registry
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack import nats_accounts
from stack.embedded import EmbeddedStack
from stack.processes import free_port
from stack.smtp_sink import read_mailbox
from tests.support.stack import REPO_ROOT, fresh_settings
from web.gateway import client_for
from web.settings import WebSettings

pytestmark = pytest.mark.integration

ATTACKER = "attacker@evil.example"
VICTIM = str(uuid.uuid4())

FORGERIES: dict[str, dict[str, object]] = {
    "ambassadors.v1.erased": {"event_id": str(uuid.uuid4()), "ambassador_id": VICTIM},
    "events.v1.invited": {
        "event_id": str(uuid.uuid4()),
        "meeting_id": "m-made-up",
        "ambassador_id": VICTIM,
        "email": ATTACKER,
        "rsvp_url": "https://evil.example/login",
    },
    "ambassadors.v1.activated": {
        "event_id": str(uuid.uuid4()),
        "ambassador_id": str(uuid.uuid4()),
        "email": ATTACKER,
        "certificate": {"bucket": "certificates", "object": f"{VICTIM}.pdf"},
    },
}
OWNER = {"ambassadors.v1.erased": "ambassadors", "events.v1.invited": "events"}
OWNER["ambassadors.v1.activated"] = "ambassadors"


async def refused_publishes(
    url: str, user: str, password: str, subjects: list[str], body: bytes | None = None
) -> set[str]:
    """The subjects of ``subjects`` the server refused ``user`` to publish on (each with
    its forgery, or ``body``)."""
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error).lower())

    nc = await nats.connect(
        url,
        user=user,
        password=password,
        inbox_prefix=f"_INBOX_{user}",
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        for subject in subjects:
            payload = json.dumps(FORGERIES[subject]).encode() if body is None else body
            await nc.publish(subject, payload)
        await nc.flush()
        refused: set[str] = set()
        for _ in range(40):
            refused = {
                s
                for s in subjects
                if any(f'"{s.lower()}"' in e and "permissions" in e for e in errors)
            }
            if refused == set(subjects):
                break
            await asyncio.sleep(0.05)
        return refused
    finally:
        await nc.close()


async def messages_on(stack: EmbeddedStack, stream: str, subject: str) -> int:
    """How many messages ``stream`` holds on ``subject``, asked as the stream's owner."""
    nc = await nats.connect(stack.settings.nats_url, **stack.nats_options(stream.lower()))
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
    finally:
        await nc.close()
    return (info.state.subjects or {}).get(subject, 0)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    settings = fresh_settings(tmp_path / "var", services=registry.built(), demo_import=False)
    embedded = EmbeddedStack(settings, REPO_ROOT, nats_monitor_port=free_port())
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def test_the_credentials_are_generated_once_and_readable_by_their_owner_only(
    stack: EmbeddedStack,
) -> None:
    directory = stack.data_dir / "credentials"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for user in nats_accounts.USERS:
        path = directory / f"{user}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text()) == {
            "user": user,
            "password": stack.nats_passwords[user],
        }
    # The generated config includes exactly the shipped accounts: no other user exists.
    written = (stack.nats.config_path.parent / "accounts.conf").read_text()
    assert written == nats_accounts.ACCOUNTS_FILE.read_text()
    assert "include ./accounts.conf" in stack.nats.config_path.read_text()
    for name in registry.built():
        log = stack.service(name).log_path.read_text().lower()
        assert "permissions violation" not in log and "authorization" not in log, log[-3000:]


async def test_anonymous_clients_and_forged_events_are_refused(stack: EmbeddedStack) -> None:
    url = stack.settings.nats_url
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error).lower())

    with pytest.raises(Exception) as anonymous:
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=on_error)
    assert "authorization" in " ".join([str(anonymous.value).lower(), *errors])

    for user in nats_accounts.USERS:
        forging = [subject for subject in FORGERIES if OWNER[subject] != user]
        refused = await refused_publishes(url, user, stack.nats_passwords[user], forging)
        assert refused == set(forging), f"{user} could publish {set(forging) - refused}"

    assert await messages_on(stack, "AMBASSADORS", "ambassadors.v1.erased") == 0
    assert await messages_on(stack, "AMBASSADORS", "ambassadors.v1.activated") == 0
    assert await messages_on(stack, "EVENTS", "events.v1.invited") == 0
    assert not [m for m in read_mailbox(stack.mail_dir) if ATTACKER in str(m.get("To", ""))]


async def test_the_cli_logs_in_with_the_operators_credentials_the_stack_left(
    stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAMSKAB_NATS_USER", raising=False)
    monkeypatch.delenv("SAMSKAB_NATS_PASSWORD", raising=False)
    settings = ClientSettings(
        _env_file=None, nats_url=stack.settings.nats_url, data_dir=stack.data_dir
    )
    assert settings.nats_user == "cli"
    async with ServiceClient(settings) as client:
        for name in registry.built():
            answer = await client.call(health(name), GetHealth())
            assert answer.status == "ok"


async def test_the_website_may_ask_only_the_public_endpoints(
    stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAMSKAB_NATS_USER", raising=False)
    monkeypatch.delenv("SAMSKAB_NATS_PASSWORD", raising=False)
    settings = WebSettings(
        _env_file=None,
        nats_url=stack.settings.nats_url,
        data_dir=stack.data_dir,
        web_csrf_secret="w" * 32,
    )
    assert settings.nats_user == nats_accounts.WEB_USER  # the stack's generated login
    async with client_for(settings) as client:
        answer = await client.call(Ambassadors.VERIFY, VerifyCertificate(code="NOPE0000"))
        assert not answer.genuine
    staff_powers = [
        Ambassadors.REGISTER.subject,
        Ambassadors.ERASE.subject,
        Ambassadors.LIST.subject,
        "newsletter.cmd.send",
        "events.cmd.schedule",
        "ambassadors.v1.signed_up",
        "$JS.API.STREAM.INFO.AMBASSADORS",
    ]
    password = stack.nats_passwords[nats_accounts.WEB_USER]
    refused = await refused_publishes(
        stack.settings.nats_url, nats_accounts.WEB_USER, password, staff_powers, body=b"{}"
    )
    assert refused == set(staff_powers)
