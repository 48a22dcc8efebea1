"""Staff powers are separate subjects (contracts/endpoints.py ``public``).

What anyone may use (a self sign-up, the links in mails, the directory, the calendar, the
archive) is marked public; everything else is a staff power on a subject of its own, which
the NATS accounts let only the operators' user publish. A staff power is never a field of a
public request.
"""

from __future__ import annotations

import importlib

from contracts.endpoints import Endpoint
from services import registry
from stack import nats_accounts

PUBLIC = {
    "ambassadors.cmd.sign_up",
    "ambassadors.cmd.confirm",
    "ambassadors.query.verify",
    "ambassadors.query.directory",
    # Counts only (the website's goals page): no person in it.
    "ambassadors.query.goals",
    # The consent text the sign-up form shows.
    "ambassadors.query.consent",
    "events.cmd.answer",
    "events.query.calendar",
    # What an answer link holder may see: the meeting and their own answer only.
    "events.query.invitation",
    # A network invitation's link: its holder answers, and sees the network and their answer.
    "networks.cmd.answer",
    "networks.query.invitation",
    # Counts only (the website's goals page).
    "networks.query.initiatives",
    # Networks at work and their results: organisations, never a person.
    "networks.query.public",
    # A call-out's link: its holder answers whether they can help, and sees the message.
    "networks.cmd.answer_alert",
    "networks.query.alert",
    "newsletter.cmd.subscribe",
    "newsletter.cmd.confirm",
    "newsletter.cmd.unsubscribe",
    "newsletter.query.archive",
    # The pictures of sent issues (public as the issues are).
    "newsletter.query.archive_image",
    # An ambassador's own stories, by the token of their personal link; the guide checks
    # (no data); the published stories and their pictures (public as the Page is).
    "social.cmd.submit_own",
    "social.cmd.revise_own",
    "social.query.own",
    "social.query.check",
    "social.query.public_stories",
    "social.query.public_picture",
    # A picture of one's own story, by the token of the personal link (the website's
    # stories page shows what they sent).
    "social.query.own_picture",
}
# Fields that would let a caller claim what only staff may decide.
STAFF_FIELDS = {"staff", "source", "status", "active", "actor", "ambassador_id"}


def declared() -> list[Endpoint]:  # type: ignore[type-arg]
    found = []
    for name in registry.built():
        found += list(importlib.import_module(f"contracts.{name}").Endpoints.all())
    return found


def test_exactly_the_endpoints_anyone_may_use_are_public() -> None:
    assert {e.subject for e in declared() if e.public} == PUBLIC


def test_no_public_request_carries_a_staff_power() -> None:
    for endpoint in declared():
        if endpoint.public:
            fields = set(endpoint.request.model_fields)
            assert not fields & STAFF_FIELDS, f"{endpoint.subject}: {fields & STAFF_FIELDS}"


def test_entering_an_active_ambassador_is_its_own_staff_subject() -> None:
    subjects = {e.subject: e for e in declared()}
    assert not subjects["ambassadors.cmd.register"].public
    assert "staff" not in subjects["ambassadors.cmd.sign_up"].request.model_fields


def test_only_the_operators_user_may_send_another_services_commands() -> None:
    accounts = nats_accounts.render()
    # Publishing on it: the cli user's allow list only (the header mentions it too).
    assert accounts.count('              "*.cmd.>"') == 1
    for name in registry.names():
        block = accounts.split(f"user: {name}\n", 1)[1].split("allow_responses", 1)[0]
        publish = block.split("subscribe:", 1)[0]
        others = [other for other in registry.names() if other != name]
        assert not any(f'"{other}.' in publish for other in others), name
