"""The bytes that go to SMTP: MIME structure, RFC 8058 headers, no header injection."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import pytest

from services.newsletter.mail.compose import (
    Attachment,
    HeaderInjectionError,
    InlineImage,
    PreparedIssue,
    compose_message,
    mailto_unsubscribe,
)
from services.newsletter.mail.rendering import RenderedMail, render_issue, render_mail

FROM = "ambassadoer@fredericia.example"
FROM_NAME = "Ambassadørnetværket, Fredericia Kommune"
UNSUBSCRIBE = "https://samskab.example/newsletter/unsubscribe/tok-abc"
MAILTO = mailto_unsubscribe("afmeld@fredericia.example", "tok-abc")
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def welcome() -> RenderedMail:
    return render_mail(
        "welcome",
        {
            "name": "Åse Ærbødig-Østergård",
            "certificate_number": "FRC-2026-000123",
            "verify_url": "https://samskab.example/verify/ABC",
            "unsubscribe_url": UNSUBSCRIBE,
        },
    )


def compose(rendered: RenderedMail | None = None, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "to_address": "aase@example.org",
        "to_name": "Åse Ærbødig-Østergård",
        "from_address": FROM,
        "from_name": FROM_NAME,
        "message_id": "<0f1e2d@samskab.fredericia.example>",
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": MAILTO,
        "date": datetime(2026, 4, 1, 8, 0, tzinfo=UTC),
        **overrides,
    }
    return compose_message(rendered or welcome(), **arguments)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    # Text travels with CRLF line breaks, as RFC 2045 wants; compare in Python's form.
    return str(part.get_content()).replace("\r\n", "\n")


def parts(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


def issue_context() -> dict[str, Any]:
    return {
        "title": "Nyhedsbrev, forår 2026",
        "period": {"since": date(2026, 1, 1), "until": date(2026, 3, 31)},
        "items": [
            {
                "title": "Grillaften på Østerstrand",
                "body_html": "<p>"
                + "Alle er velkomne – også børn og bedsteforældre. " * 30
                + "</p>",
                "image_cid": "item-1@samskab.example",
                "ambassador_name": "Kirkens Korshær",
            }
        ],
    }


# -- structure --------------------------------------------------------------------------


def test_a_mail_is_multipart_alternative_with_text_first_then_html() -> None:
    message = parse(compose())

    assert parts(message) == ["multipart/alternative", "text/plain", "text/html"]
    assert message["MIME-Version"] == "1.0"
    assert body(message, "plain") == welcome().text
    assert body(message, "html") == welcome().html + "\n"
    for part in list(message.walk())[1:]:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"


def test_the_certificate_pdf_is_attached_with_its_filename() -> None:
    attachment = Attachment(
        filename="ambassadoerbevis-FRC-2026-000123.pdf",
        content_type="application/pdf",
        data=PDF,
    )
    message = parse(compose(attachments=[attachment]))

    assert parts(message) == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    (pdf,) = list(message.iter_attachments())
    assert pdf.get_filename() == "ambassadoerbevis-FRC-2026-000123.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_content() == PDF


def test_a_danish_attachment_filename_survives() -> None:
    attachment = Attachment("ambassadørbevis.pdf", "application/pdf", PDF)
    (pdf,) = list(parse(compose(attachments=[attachment])).iter_attachments())

    assert pdf.get_filename() == "ambassadørbevis.pdf"


def test_inline_images_are_related_to_the_html_by_content_id() -> None:
    image = InlineImage(
        cid="item-1@samskab.example", content_type="image/jpeg", data=b"\xff\xd8jpeg"
    )
    message = parse(compose(inline_images=[image]))

    assert parts(message) == [
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/jpeg",
    ]
    jpeg = next(p for p in message.walk() if p.get_content_type() == "image/jpeg")
    assert jpeg["Content-ID"] == "<item-1@samskab.example>"
    assert jpeg.get_content_disposition() == "inline"
    assert jpeg.get_content() == b"\xff\xd8jpeg"


# -- headers ----------------------------------------------------------------------------


def test_list_unsubscribe_headers_are_as_rfc_8058_wants() -> None:
    message = parse(compose())

    assert message["List-Unsubscribe"] == (
        "<https://samskab.example/newsletter/unsubscribe/tok-abc>, "
        "<mailto:afmeld@fredericia.example?subject=unsubscribe%20tok-abc>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_mail_to_someone_who_is_no_subscriber_has_no_list_unsubscribe() -> None:
    message = parse(compose(unsubscribe_url=None, unsubscribe_mailto=None))

    assert "List-Unsubscribe" not in message and "List-Unsubscribe-Post" not in message


def test_only_an_issue_is_marked_bulk() -> None:
    assert "Precedence" not in parse(compose())
    assert parse(compose(bulk=True))["Precedence"] == "bulk"


def test_the_given_message_id_and_date_are_used() -> None:
    message = parse(compose())

    assert message["Message-ID"] == "<0f1e2d@samskab.fredericia.example>"
    assert message["Date"].datetime == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def test_danish_letters_survive_the_round_trip_in_headers_and_bodies() -> None:
    message = parse(compose())

    assert message["Subject"] == "Velkommen i ambassadørnetværket"
    assert message["From"].addresses[0].display_name == FROM_NAME
    assert message["From"].addresses[0].addr_spec == FROM
    assert message["To"].addresses[0].display_name == "Åse Ærbødig-Østergård"
    assert "Velkommen, Åse Ærbødig-Østergård" in body(message, "plain")
    assert "Velkommen, Åse Ærbødig-Østergård" in body(message, "html")


@pytest.mark.parametrize(
    "name",
    [
        'Jensen, "Bo" \\ Co.',
        "Ø" * 200,
        "Æble" + " ord" * 60,
        "Plain Name",
        "  Bo Jensen  ",
        "=?utf-8?q?Falsk?=",
    ],
)
def test_display_names_of_any_shape_come_back_unchanged(name: str) -> None:
    data = compose(to_name=name)
    message = parse(data)

    # The legacy decoder follows RFC 2047 to the letter (whitespace between adjacent
    # encoded words is dropped); the modern parser puts a space there, mail clients do not.
    raw = email.message_from_bytes(data, policy=policy.compat32)["To"]
    decoded_name, _ = parseaddr(str(make_header(decode_header(raw))))
    assert decoded_name == name.strip()
    assert message["To"].addresses[0].addr_spec == "aase@example.org"
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in header_block.split(b"\r\n"))


def test_a_domain_with_danish_letters_is_sent_in_its_idna_form() -> None:
    message = parse(compose(to_address="post@østergård.dk"))

    assert message["To"].addresses[0].addr_spec == "post@xn--stergrd-ixa9n.dk"


def test_the_bytes_are_smtp_ready() -> None:
    data = compose(attachments=[Attachment("a.pdf", "application/pdf", PDF)])

    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert data.isascii()  # 7-bit clean: quoted-printable and base64 bodies
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))


# -- header injection -------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"to_name": "Eve\r\nBcc: victim@example.org"},
        {"to_name": "Eve\nBcc: victim@example.org"},
        {"to_name": "Eve\u2028Bcc: victim@example.org"},
        {"from_name": "Samskab\rBcc: victim@example.org"},
        {"to_address": "eve@example.org\r\nBcc: victim@example.org"},
        {"message_id": "<a@b>\r\nBcc: victim@example.org"},
        {"unsubscribe_url": UNSUBSCRIBE + "\r\nBcc: victim@example.org"},
        {"unsubscribe_mailto": MAILTO + "\nBcc: victim@example.org"},
        {"attachments": [Attachment("a.pdf\r\nBcc: x@y", "application/pdf", PDF)]},
    ],
)
def test_a_header_injection_attempt_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(HeaderInjectionError):
        compose(**overrides)


def test_a_subject_with_a_line_break_is_refused() -> None:
    rendered = RenderedMail(subject="Hej\r\nBcc: victim@example.org", html="<p>x</p>", text="x")

    with pytest.raises(HeaderInjectionError):
        compose(rendered)


@pytest.mark.parametrize(
    "overrides",
    [
        {"message_id": "no-angle-brackets@x"},
        {"unsubscribe_url": "javascript:alert(1)"},
        {"unsubscribe_mailto": "afmeld@fredericia.example"},
        {"unsubscribe_url": "https://x/a>,<https://evil"},
        {"to_address": "not an address"},
    ],
)
def test_malformed_header_values_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        compose(**overrides)


# -- an issue to many subscribers -------------------------------------------------------


def prepared_issue() -> tuple[PreparedIssue, Any]:
    issue = render_issue(issue_context())
    image = InlineImage("item-1@samskab.example", "image/jpeg", b"\xff\xd8" + b"x" * 5000)
    prepared = PreparedIssue(
        issue,
        from_address=FROM,
        from_name=FROM_NAME,
        inline_images=[image],
        date=datetime(2026, 4, 1, 8, 0, tzinfo=UTC),
    )
    return prepared, issue


def copy_for(prepared: PreparedIssue, n: int, url: str | None) -> EmailMessage:
    token = f"tok-{n}"
    return parse(
        prepared.message_for(
            to_address=f"subscriber{n}@example.org",
            to_name=f"Abonnent nr. {n} Ærø",
            message_id=f"<mail-{n}@samskab.fredericia.example>",
            unsubscribe_url=url,
            unsubscribe_mailto=mailto_unsubscribe("afmeld@fredericia.example", token)
            if url
            else None,
        )
    )


def test_each_subscriber_gets_the_rendered_issue_with_their_own_unsubscribe_link() -> None:
    prepared, issue = prepared_issue()
    urls = [f"https://samskab.example/newsletter/unsubscribe/tok-{n}?k=a&v=1" for n in (1, 2)]
    copies = [copy_for(prepared, n, url) for n, url in zip((1, 2), urls, strict=True)]

    for message, url in zip(copies, urls, strict=True):
        expected = issue.personalise(url)
        assert body(message, "plain") == expected.text
        assert body(message, "html") == expected.html + "\n"
        assert message["Subject"] == expected.subject
        assert message["List-Unsubscribe"].startswith(f"<{url}>, <mailto:")
        assert message["Precedence"] == "bulk"
        assert parts(message) == [
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/jpeg",
        ]
    assert copies[0]["To"].addresses[0].display_name == "Abonnent nr. 1 Ærø"
    assert copies[0]["Message-ID"] != copies[1]["Message-ID"]


def test_copies_differ_only_in_the_personal_headers_and_the_unsubscribe_link() -> None:
    prepared, _ = prepared_issue()
    # The links' marks are letters: the MIME boundaries are random digits, which "111"
    # would now and then be part of.
    a, b = (
        prepared.message_for(
            to_address=f"s{n}@example.org",
            to_name=None,
            message_id=f"<m{n}@x>",
            unsubscribe_url=f"https://x/u/{mark}",
            unsubscribe_mailto=None,
        )
        for n, mark in ((1, "QQQ"), (2, "WWW"))
    )

    assert a.replace(b"s1@", b"s2@").replace(b"<m1@", b"<m2@").replace(b"QQQ", b"WWW") == b
    assert b"\n" not in a.replace(b"\r\n", b"") and a.isascii()
    assert all(len(line) <= 78 for line in a.split(b"\r\n"))


def test_a_copy_without_unsubscribe_url_has_neither_link_nor_headers() -> None:
    prepared, issue = prepared_issue()
    message = copy_for(prepared, 3, None)

    assert body(message, "html") == issue.anonymous.html + "\n"
    assert "List-Unsubscribe" not in message
    assert issue.marker.encode() not in message.as_bytes()
