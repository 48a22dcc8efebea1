"""The invitation to a network, as the newsletter service mails it (services/newsletter/
networks.py): voluntary, with accept and decline links the networks service can check,
to the address this service knows, once per event."""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import unquote

import pytest

from contracts.ambassadors import Activated, CertificateRef, Erased, Kind, Withdrawn
from contracts.networks import (
    MemberInvited,
    NetworkAlerted,
    NetworkInfo,
    NetworkKind,
    NoticeKind,
    Replacement,
    StaffNotice,
)
from services.newsletter import networks
from services.newsletter.mail.rendering import render_mail
from services.runtime import tokens
from services.runtime.testing import ServiceHarness
from tests.unit.newsletter_support import NETWORKS_SECRET, PUBLIC_URL, Service, mails_of
from tests.unit.test_newsletter_meetings import LINKS

REPLY_BY = datetime(2027, 3, 11, 9, 0, tzinfo=UTC)


def invited(ambassador_id: str = "amb-1", email: str = "anna@example.org") -> MemberInvited:
    return MemberInvited(
        network_id="net-1",
        ambassador_id=ambassador_id,
        email=email,
        name="Anna Hansen",
        network=NetworkInfo(
            network_id="net-1",
            kind=NetworkKind.ACTION,
            title="Vinterværested",
            challenge_title="Et varmt sted om vinteren",
            ends=date(2027, 6, 30),
        ),
        reply_by=REPLY_BY,
    )


def activated(ambassador_id: str = "amb-1", email: str = "anna@example.org") -> Activated:
    return Activated(
        ambassador_id=ambassador_id,
        name="Anna Hansen",
        email=email,
        kind=Kind.CITIZEN,
        public=False,
        certificate=CertificateRef(
            number="FRC-2027-000001", verification_code="ABCD-EFGH", bucket="c", object_name="o"
        ),
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_invitation_invites_and_never_summons() -> None:
    mail = render_mail(networks.INVITATION, LINKS.resolve(networks.invitation_mail(invited())))
    assert mail.subject == "Vil du være med? Vinterværested"
    for part in (mail.text, mail.html):
        assert "Det er frivilligt" in flat(part)
        assert "Et varmt sted om vinteren" in flat(part)
        assert "torsdag den 11. marts 2027" in flat(part)  # the reply deadline
        assert "30. juni 2027" in flat(part)  # the network's end
    lowered = (mail.text + mail.html).lower()
    for summoning in ("indkaldelse", "indkaldt", "mødepligt", "skal deltage"):
        assert summoning not in lowered


def test_the_links_carry_a_token_the_networks_service_accepts_for_this_member() -> None:
    mail = render_mail(networks.INVITATION, LINKS.resolve(networks.invitation_mail(invited())))
    signer = tokens.Signer("networks-secret-for-meeting-tests-0123456", tokens.NETWORK_ANSWER)
    for answer in ("ja", "nej"):
        prefix = f"{PUBLIC_URL}/netvaerk/svar/"
        [url] = [w for w in mail.text.split() if w.startswith(prefix) and w.endswith(f"/{answer}")]
        token = unquote(url.removeprefix(prefix).rsplit("/", 1)[0])
        assert signer.parts(token, 2) == ["net-1", "amb-1"]
        assert url in mail.html


def test_the_record_keeps_no_token() -> None:
    context = networks.invitation_mail(invited())
    assert "token" not in str(context) and "/netvaerk/" not in str(context)


@pytest.fixture
async def service() -> Service:
    from services.newsletter.app import build
    from tests.unit.newsletter_support import settings

    return await ServiceHarness.start(build, settings())


async def test_one_mail_per_invitation_to_the_known_address_while_active(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(activated(email="anna.ny@example.org"))
    event = invited(email="anna.gammel@example.org")
    await h.deliver(event, event)  # delivered twice: mailed once
    [mail] = mails_of(h, networks.INVITATION)
    assert mail["to_address"] == "anna.ny@example.org"
    assert mail["context"]["link"]["parts"] == ["net-1", "amb-1"]
    await h.deliver(Withdrawn(ambassador_id="amb-1"))
    await h.deliver(invited())
    assert len(mails_of(h, networks.INVITATION)) == 1  # not mailed once withdrawn
    assert NETWORKS_SECRET not in str(h.db.documents("mails"))


async def test_staff_are_told_of_a_decline_with_the_replacement_by_name(service: Service) -> None:
    h, _ = service
    await h.deliver(activated("amb-1"), activated("amb-2", email="bo@example.org"))
    notice = StaffNotice(
        network_id="net-1",
        kind=NoticeKind.REPLACEMENT,
        network=invited().network,
        about="amb-1",
        why="declined",
        replacements=[Replacement(ambassador_id="amb-2", covers=["lektiehjælp"], fills=[])],
        unmet=["nogen med kompetencen lektiehjælp"],
    )
    await h.deliver(notice, notice)
    [mail] = mails_of(h, networks.NOTICE)
    assert mail["to_address"] == "ambassadoer@fredericia.example"  # the strategy's mailbox
    rendered = render_mail(networks.NOTICE, mail["context"])
    assert rendered.subject == "Et forslag til en afløser: Vinterværested"
    for part in (rendered.text, rendered.html):
        assert "Anna Hansen (amb-1) har sagt nej tak" in flat(part)
        assert "(amb-2), kan: lektiehjælp" in flat(part)
        assert "samskab networks invite net-1 ID" in flat(part)


async def test_a_call_out_is_mailed_once_with_links_for_this_alert_and_member(
    service: Service,
) -> None:
    h, _ = service
    await h.deliver(activated("amb-1"))
    event = NetworkAlerted(
        network_id="net-1", ambassador_id="amb-1", alert_id="al-1", email="anna@example.org",
        name="Anna Hansen", network=invited().network,
        message="En familie står uden bolig i aften.", answer_by=REPLY_BY,
    )  # fmt: skip
    await h.deliver(event, event)
    [mail] = mails_of(h, networks.ALERT)
    rendered = render_mail(networks.ALERT, LINKS.resolve(mail["context"]))
    assert rendered.subject == "Akut: Vinterværested – kan du hjælpe?"
    signer = tokens.Signer("networks-secret-for-meeting-tests-0123456", tokens.ALERT_ANSWER)
    prefix = f"{PUBLIC_URL}/akut/"
    [url] = [w for w in rendered.text.split() if w.startswith(prefix) and w.endswith("/ja")]
    assert signer.parts(unquote(url.removeprefix(prefix).rsplit("/", 1)[0]), 2) == [
        "al-1",
        "amb-1",
    ]
    assert "En familie står uden bolig i aften." in rendered.html


async def test_the_erasure_of_someone_a_staff_mail_names_scrubs_it(service: Service) -> None:
    h, _ = service
    await h.deliver(activated("amb-1"), activated("amb-2", email="bo@example.org"))
    await h.deliver(
        StaffNotice(
            network_id="net-1",
            kind=NoticeKind.REPLACEMENT,
            network=invited().network,
            about="amb-1",
            why="declined",
            replacements=[Replacement(ambassador_id="amb-2")],
        )
    )
    await h.deliver(Erased(ambassador_id="amb-2"))
    [mail] = mails_of(h, networks.NOTICE)
    assert "Anna Hansen" not in str(mail) and "amb-2" not in str(mail.get("context"))
