"""``make up``'s stack admits only its own users, each with the least it needs.

The embedded stack runs as ``samskab-stack`` builds it (every built service, no test user):
nats-server with the accounts generated from the registry (the same text as
deploy/nats/accounts.conf) and a password per user generated under ``var/credentials/``.
An attacker on this machine tries the three forgeries that used to work (an ``erased`` for
an active ambassador, an ``invited`` to an outside address, an ``activated`` naming another
person's certificate): anonymously, and with each user's credentials but the owner's. The
server refuses every one, the streams hold none of them, and no mail goes out.

Then every user of the six processes (five services, the website) and the operators' CLI,
against lists built from the contracts: each is refused every subject it must not publish
(another service's commands and events, other streams' and buckets' configuration) and
every subject it must not subscribe to (another service's requests, other clients'
replies); the destructive commands reach their service from the CLI only.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import stat
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

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


async def refusals(
    url: str,
    user: str,
    password: str,
    subjects: list[str],
    attempt: Callable[[Client, str], Awaitable[object]],
    refused: Callable[[str, str], bool],
) -> set[str]:
    """The subjects of ``subjects`` whose ``attempt`` as ``user`` the server refused: those
    for which ``refused(subject, error)`` holds for one of the errors it sent."""
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
            await attempt(nc, subject)
        await nc.flush()
        found: set[str] = set()
        for _ in range(40):
            found = {s for s in subjects if any(refused(s.lower(), e) for e in errors)}
            if found == set(subjects):
                break
            await asyncio.sleep(0.05)
        return found
    finally:
        await nc.close()


async def refused_publishes(
    url: str, user: str, password: str, subjects: list[str], body: bytes | None = None
) -> set[str]:
    """The subjects of ``subjects`` the server refused ``user`` to publish on (each with
    its forgery, or ``body``)."""

    async def publish(nc: Client, subject: str) -> None:
        payload = json.dumps(FORGERIES[subject]).encode() if body is None else body
        await nc.publish(subject, payload)

    return await refusals(
        url, user, password, subjects, publish, lambda s, e: f'"{s}"' in e and "permissions" in e
    )


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


# ---------------------------------------------------------------- every user, every process

# Commands that destroy or reach many people: only the operators' CLI may send them.
DESTRUCTIVE = (
    Ambassadors.ERASE.subject,
    "newsletter.cmd.send",
    "networks.cmd.alert",
    "social.cmd.unpublish",
)


def commands_of(service: str) -> list[str]:
    endpoints = importlib.import_module(f"contracts.{service}").Endpoints.all()
    return [e.subject for e in endpoints if ".cmd." in e.subject]


def events_of(service: str) -> list[str]:
    """The subjects of the events ``service`` announces (its contracts' event models)."""
    module = importlib.import_module(f"contracts.{service}")
    found = set()
    for value in vars(module).values():
        subject = getattr(value, "subject", None)
        if isinstance(value, type) and isinstance(subject, str) and ".v1." in subject:
            found.add(subject)
    return sorted(found)


def not_its_own(user: str) -> list[str]:
    """What ``user`` must never publish: another service's commands (the operators' CLI
    sends those, and the website only the public ones), any event but its own service's,
    and the configuration, purge and consumers of any stream or bucket it does not own."""
    forbidden: list[str] = []
    # The website may send what the public may (sign-up, the links in mails); a service
    # none of another's commands, public or not.
    public = set(nats_accounts.public_subjects()) if user == nats_accounts.WEB_USER else set()
    for entry in registry.SERVICES:
        if not entry.built or entry.name == user:
            continue
        if user != nats_accounts.CLI_USER:
            forbidden += [s for s in commands_of(entry.name) if s not in public]
        forbidden += events_of(entry.name)
        stream = entry.stream
        forbidden += [
            f"$JS.API.STREAM.DELETE.{stream}",
            f"$JS.API.STREAM.PURGE.{stream}",
            f"$JS.API.STREAM.UPDATE.{stream}",
            f"$JS.API.STREAM.MSG.DELETE.{stream}",
            f"$JS.API.CONSUMER.DELETE.{stream}.{entry.name}",
        ]
        writable = {*registry.CLI_WRITES_BUCKETS} if user == nats_accounts.CLI_USER else set()
        if user == nats_accounts.WEB_USER:
            writable = set(registry.WEB_WRITES_BUCKETS)
        for bucket in entry.buckets:
            forbidden.append(f"$JS.API.STREAM.DELETE.OBJ_{bucket}")
            if bucket not in writable:
                forbidden.append(f"$O.{bucket}.C.forged")
    forbidden += [s for s in DESTRUCTIVE if user != nats_accounts.CLI_USER]
    return sorted(set(forbidden) - {s for s in forbidden if s.startswith(f"{user}.")})


async def refused_subscriptions(
    url: str, user: str, password: str, subjects: list[str]
) -> set[str]:
    async def subscribe(nc: Client, subject: str) -> None:
        await nc.subscribe(subject)

    return await refusals(
        url, user, password, subjects, subscribe, lambda s, e: f'subscription to "{s}"' in e
    )


def not_to_overhear(user: str) -> list[str]:
    """What ``user`` must never subscribe to: the requests another service answers (it
    could answer in its place or read them), every other client's replies, and the raw
    chunks of the buckets."""
    forbidden = ["_INBOX.>", f"_INBOX_{nats_accounts.CLI_USER}.>", "$O.>"]
    for entry in registry.SERVICES:
        if entry.built and entry.name != user:
            forbidden += [f"{entry.name}.cmd.>", f"{entry.name}.query.>"]
            forbidden.append(f"_INBOX_{entry.name}.>")
    return sorted(set(forbidden) - {f"_INBOX_{user}.>"})


async def test_every_user_of_the_six_processes_is_refused_what_is_not_its_own(
    stack: EmbeddedStack,
) -> None:
    url = stack.settings.nats_url
    checked = 0
    for user in nats_accounts.USERS:
        password = stack.nats_passwords[user]
        forbidden = not_its_own(user)
        refused = await refused_publishes(url, user, password, forbidden, body=b"{}")
        assert refused == set(forbidden), f"{user} could publish {set(forbidden) - refused}"
        overheard = not_to_overhear(user)
        refused = await refused_subscriptions(url, user, password, overheard)
        assert refused == set(overheard), f"{user} could subscribe to {set(overheard) - refused}"
        checked += len(forbidden) + len(overheard)
    assert checked > 300  # the lists above are the contracts', not empty
    # Nothing of it reached a stream.
    for entry in registry.SERVICES:
        if entry.built:
            for subject in events_of(entry.name):
                assert await messages_on(stack, entry.stream, subject) == 0, subject


async def test_destructive_commands_reach_their_service_from_the_operators_cli_only(
    stack: EmbeddedStack,
) -> None:
    url = stack.settings.nats_url
    for user in nats_accounts.USERS:
        if user == nats_accounts.CLI_USER:
            continue
        own = [s for s in DESTRUCTIVE if s.startswith(f"{user}.")]
        others = [s for s in DESTRUCTIVE if s not in own]
        refused = await refused_publishes(url, user, stack.nats_passwords[user], others, body=b"{}")
        assert refused == set(others), f"{user} could send {set(others) - refused}"
    # The operators' CLI may: an erasure of nobody is answered (not found), not refused.
    refused = await refused_publishes(
        url, nats_accounts.CLI_USER, stack.nats_passwords[nats_accounts.CLI_USER],
        [Ambassadors.ERASE.subject], body=b"{}",
    )  # fmt: skip
    assert refused == set()
