"""Build the RFC 5322 bytes of a mail from a rendered mail, ready for SMTP DATA.

Structure (a level appears only when needed):

    multipart/mixed                      only when there are attachments
      multipart/alternative
        text/plain                       first: clients show the last part they understand
        multipart/related                only when there are inline images
          text/html                      refers to the images as cid:<content id>
          image/*                        Content-ID <content id>, disposition inline
      application/pdf ...                the attachments (a certificate; an invitation as
                                         text/calendar; method=REQUEST, RFC 6047)

Both text parts are UTF-8 quoted-printable: 7-bit clean for any relay, and the Danish
letters stay legible in the raw source. Every header value is checked for CR/LF and other
control characters before it goes near the message, so no name or subject can add a header
of its own.

Speed: an issue goes to thousands of subscribers, and building an ``EmailMessage`` costs
milliseconds (more with images to base64). So the message is built once as a skeleton by
the email package (structure, boundaries, encoded images and attachments, the shared
headers) and each recipient's copy is that skeleton with the personal headers (To,
Message-ID, List-Unsubscribe) and the bodies, quoted-printable encoded once, joined in;
the unsubscribe link is spliced into the encoded body between soft line breaks. Every mail,
issue or not, goes through this one path, so the fast one is the tested one.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import ContentTypeHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import cast
from urllib.parse import quote

from markupsafe import escape

from services.newsletter.mail.rendering import RenderedIssue, RenderedMail, safe_url

_POLICY = policy.SMTP  # CRLF line endings, RFC 2047 for non-ASCII header text
_CRLF = b"\r\n"
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable ASCII without < > @ space
_CID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")
_ADDRESS = re.compile(r"[!-~]+@[!-~]+")
_ATOM_SPECIALS = frozenset('()<>[]:;@\\,."')
_LINE_BREAKS = frozenset("\x7f\x85\u2028\u2029")
# An encoded word may be 75 characters; 45 bytes of UTF-8 are 60 in base64, plus "=?utf-8?b??=".
_WORD_BYTES = 45


class HeaderInjectionError(ValueError):
    """A value meant for one header contains a line break or another control character."""


@dataclass(frozen=True)
class Attachment:
    """``content_type`` may carry parameters: ``text/calendar; method=REQUEST; charset=utf-8``."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML shows as ``<img src="cid:{cid}">``; ``cid`` has no angle brackets."""

    cid: str
    content_type: str
    data: bytes
    filename: str | None = None


# -- header values ----------------------------------------------------------------------


def _header_safe(name: str, value: str) -> str:
    # Folding a CR/LF away silently would hide an attack in a name or subject; refusing
    # makes the caller see it. Other control characters, and the Unicode line breaks
    # Python's str.splitlines() also honours, have no business in a header either.
    if any(ord(ch) < 32 or ch in _LINE_BREAKS for ch in value):
        raise HeaderInjectionError(f"{name} contains a line break or control character")
    return value


def _ascii_address(address: str, header: str) -> str:
    _header_safe(f"{header} address", address)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{header}: not an e-mail address: {address!r}")
    if not local.isascii():
        raise ValueError(f"{header}: a non-ASCII local part needs SMTPUTF8: {address!r}")
    if not domain.isascii():
        # Danish domains may carry æøå; the wire form is their IDNA (punycode) spelling.
        domain = domain.encode("idna").decode("ascii")
    result = f"{local}@{domain}"
    if not _ADDRESS.fullmatch(result) or result.count("<") or result.count(">"):
        raise ValueError(f"{header}: not an e-mail address: {address!r}")
    return result


def _encoded_words(text: str) -> list[str]:
    words: list[str] = []
    chunk = ""
    for ch in text:
        if len((chunk + ch).encode()) > _WORD_BYTES:
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w.encode()).decode('ascii')}?=" for w in words]


def _display_name(name: str) -> str:
    """The phrase before ``<address>``: plain, quoted, or RFC 2047 encoded and folded."""
    if not name:
        return ""
    # "=?" would read as the start of an encoded word: such a name is encoded itself.
    if name.isascii() and name.strip() == name and "  " not in name and "=?" not in name:
        if not any(ch in _ATOM_SPECIALS for ch in name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "\r\n ".join(_encoded_words(name))


def _mailbox(name: str | None, address: str, header: str) -> str:
    addr = _ascii_address(address, header)
    phrase = _display_name(_header_safe(f"{header} name", (name or "").strip()))
    return f"{phrase} <{addr}>" if phrase else addr


def mailto_unsubscribe(address: str, token: str) -> str:
    """The mailto half of List-Unsubscribe: the token travels in the subject."""
    addr = _ascii_address(address, "unsubscribe")
    return f"mailto:{addr}?subject={quote('unsubscribe ' + token, safe='')}"


def _list_unsubscribe(url: str, mailto: str | None) -> bytes:
    if safe_url(_header_safe("unsubscribe URL", url)) is None:
        raise ValueError("the unsubscribe URL must be http(s) (https in production)")
    uris = [url]
    if mailto is not None:
        if not _header_safe("unsubscribe mailto", mailto).startswith("mailto:"):
            raise ValueError("unsubscribe_mailto must be a mailto: URI (see mailto_unsubscribe)")
        uris.append(mailto)
    # '<' and '>' delimit the URIs in this header, ',' separates them.
    if any(c in uri for uri in uris for c in "<>, ") or not all(u.isascii() for u in uris):
        raise ValueError("unsubscribe URIs must be ASCII without '<', '>', ',' or spaces")
    value = ",\r\n ".join(f"<{uri}>" for uri in uris)
    # RFC 8058: the receiver may POST "List-Unsubscribe=One-Click" to the https URI.
    return (
        f"List-Unsubscribe: {value}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    ).encode("ascii")


def _split_type(content_type: str) -> tuple[str, str]:
    maintype, subtype, params = _content_type(content_type)
    if params:
        raise ValueError(f"content type takes no parameters here, got {content_type!r}")
    return maintype, subtype


def _content_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """``type/subtype`` and its parameters: ``text/calendar; method=REQUEST; charset=utf-8``
    (RFC 6047) is ``("text", "calendar", {"method": "REQUEST", "charset": "utf-8"})``."""
    header = _POLICY.header_factory("content-type", _header_safe("content type", content_type))
    parsed = cast("ContentTypeHeader", header)
    # A parse problem is recorded as a defect, not raised ("garbage" reads as text/plain).
    if getattr(parsed, "defects", ()) or "/" not in content_type.partition(";")[0]:
        raise ValueError(f"content type must be type/subtype[; name=value]*, got {content_type!r}")
    return parsed.maintype, parsed.subtype, dict(parsed.params)


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    # Naive datetimes are UTC here, as MongoDB returns them.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- bodies -----------------------------------------------------------------------------


def _qp(text: str) -> bytes:
    crlf = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    encoded = binascii.b2a_qp(crlf, quotetabs=False, istext=True, header=False)
    # b2a_qp uses bare LF for soft breaks when its input has no line break at all.
    return encoded.replace(_CRLF, b"\n").replace(b"\n", _CRLF)


def _soft_break(encoded: bytes) -> bytes:
    """End quoted-printable data with a soft line break, so more can follow seamlessly.

    A line may hold 76 characters including the "=", and an escape ("=C3") stays whole.
    """
    start = encoded.rfind(b"\n") + 1
    last = encoded[start:]
    if len(last) < 76:
        return encoded + b"=\r\n"
    cut = 75
    while b"=" in last[cut - 2 : cut]:
        cut -= 1
    return encoded[: start + cut] + b"=\r\n" + _soft_break(last[cut:])


@dataclass(frozen=True)
class _EncodedBody:
    """A text part encoded once, with holes where personal URLs go (the unsubscribe link,
    the ambassador's own stories link): ``pieces`` has one more entry than ``markers``."""

    pieces: tuple[bytes, ...]
    markers: tuple[str, ...]
    escape_html: bool

    @classmethod
    def encode(cls, text: str, markers: Sequence[str], *, html: bool) -> _EncodedBody:
        if not text.endswith("\n"):
            text += "\n"  # the part ends with a line break, as the email package writes it
        for marker in markers:
            if text.count(marker) != 1:
                raise ValueError("each marker must appear exactly once in each part")
        ordered = tuple(sorted(markers, key=text.index))
        pieces: list[bytes] = []
        rest = text
        for marker in ordered:
            head, rest = rest.split(marker)
            pieces.append(_qp(head))
        pieces.append(_qp(rest))
        return cls(tuple(pieces), ordered, html)

    def fill(self, urls: Mapping[str, str | None]) -> bytes:
        """The part with each marker's URL (``urls`` by marker) in its hole."""
        if not self.markers:
            return self.pieces[0]
        out: list[bytes] = []
        for piece, marker in zip(self.pieces, self.markers, strict=False):
            url = urls.get(marker)
            if url is None:
                raise ValueError("this body has a place for a personal URL; give one")
            value = str(escape(url)) if self.escape_html else url
            out += [_soft_break(piece), _soft_break(_qp(value))]
        out.append(self.pieces[-1])
        return b"".join(out)


def _skeleton_body(
    message: EmailMessage,
    text_slot: str,
    html_slot: str,
    inline_images: Sequence[InlineImage],
    attachments: Sequence[Attachment],
) -> None:
    message.set_content(text_slot + "\n", subtype="plain", cte="quoted-printable")
    message.add_alternative(html_slot + "\n", subtype="html", cte="quoted-printable")
    html_part = message.get_body(preferencelist=("html",))
    if not isinstance(html_part, EmailMessage):
        raise RuntimeError("the HTML part was not where it was just put")
    for image in inline_images:
        if not _CID.fullmatch(image.cid):
            raise ValueError(f"inline image cid must look like 'name@domain': {image.cid!r}")
        maintype, subtype = _split_type(image.content_type)
        html_part.add_related(
            image.data,
            maintype=maintype,
            subtype=subtype,
            cid=f"<{image.cid}>",
            disposition="inline",
            filename=image.filename,
        )
    for attachment in attachments:
        maintype, subtype, params = _content_type(attachment.content_type)
        # Base64 for any type: an .ics is text, but its lines must reach the calendar with
        # their CRLF and folding untouched. Parameters stay on the Content-Type (an
        # invitation is recognised by "text/calendar; method=REQUEST").
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=_header_safe("attachment filename", attachment.filename),
            params=params or None,
        )


class PreparedMessage:
    """One rendered mail turned into bytes once; :meth:`message_for` makes each copy.

    ``marker`` (from :class:`RenderedIssue`) marks where the personal unsubscribe URL
    goes in both parts, ``stories_marker`` where the ambassador's own stories link goes;
    without them the bodies are used as they are.
    """

    def __init__(
        self,
        rendered: RenderedMail,
        *,
        from_address: str,
        from_name: str | None,
        marker: str | None = None,
        stories_marker: str | None = None,
        attachments: Sequence[Attachment] = (),
        inline_images: Sequence[InlineImage] = (),
        date: datetime | None = None,
        bulk: bool = False,
    ) -> None:
        self._marker, self._stories_marker = marker, stories_marker
        markers = [m for m in (marker, stories_marker) if m is not None]
        self._text = _EncodedBody.encode(rendered.text, markers, html=False)
        self._html = _EncodedBody.encode(rendered.html, markers, html=True)
        slot = secrets.token_hex(16)
        text_slot, html_slot = f"samskabtext{slot}", f"samskabhtml{slot}"
        message = EmailMessage(policy=_POLICY)
        message["From"] = _mailbox(from_name, from_address, "From")
        message["Subject"] = _header_safe("Subject", rendered.subject)
        message["Date"] = format_datetime(_utc(date))
        if bulk:
            message["Precedence"] = "bulk"
        _skeleton_body(message, text_slot, html_slot, inline_images, attachments)
        headers, _, body = message.as_bytes(policy=_POLICY).partition(_CRLF + _CRLF)
        # The personal headers go after the shared ones and before the MIME ones, the order
        # a reader of the raw source expects.
        shared, mime_version, mime = (headers + _CRLF).partition(b"MIME-Version:")
        if not mime_version:
            raise RuntimeError("the skeleton message has no MIME-Version header")
        self._headers = (shared, mime_version + mime)
        before_text, _, rest = body.partition(text_slot.encode() + _CRLF)
        between, _, after_html = rest.partition(html_slot.encode() + _CRLF)
        if not after_html:
            raise RuntimeError("the body slots were not found in the skeleton message")
        self._segments = (before_text, between, after_html)

    def message_for(
        self,
        *,
        to_address: str,
        to_name: str | None,
        message_id: str,
        unsubscribe_url: str | None,
        unsubscribe_mailto: str | None,
        stories_url: str | None = None,
    ) -> bytes:
        if not _MESSAGE_ID.fullmatch(_header_safe("Message-ID", message_id)):
            raise ValueError(f"Message-ID must look like <id@domain>: {message_id!r}")
        personal = f"To: {_mailbox(to_name, to_address, 'To')}\r\nMessage-ID: {message_id}\r\n"
        unsubscribe = b""
        if unsubscribe_url is not None:
            unsubscribe = _list_unsubscribe(unsubscribe_url, unsubscribe_mailto)
        shared, mime = self._headers
        before_text, between, after_html = self._segments
        urls: dict[str, str | None] = {}
        if self._marker is not None:
            urls[self._marker] = unsubscribe_url
        if self._stories_marker is not None:
            urls[self._stories_marker] = stories_url
        return b"".join(
            (
                shared,
                personal.encode("ascii"),
                unsubscribe,
                mime,
                _CRLF,
                before_text,
                self._text.fill(urls),
                between,
                self._html.fill(urls),
                after_html,
            )
        )


def compose_message(
    rendered: RenderedMail,
    *,
    to_address: str,
    to_name: str | None,
    from_address: str,
    from_name: str | None,
    message_id: str,
    unsubscribe_url: str | None,
    unsubscribe_mailto: str | None,
    attachments: Sequence[Attachment] = (),
    inline_images: Sequence[InlineImage] = (),
    date: datetime | None = None,
    bulk: bool = False,
) -> bytes:
    """One complete message as bytes with CRLF line endings.

    ``message_id`` is given (``<id@domain>``) because it must stay the same across
    retries. ``unsubscribe_url`` puts the RFC 8058 headers on the mail (the footer link
    comes from the rendered body); ``unsubscribe_mailto`` is a full ``mailto:`` URI
    (:func:`mailto_unsubscribe`) and only used together with it. ``bulk`` marks a newsletter
    issue (``Precedence: bulk``), never a mail someone is waiting for.
    """
    prepared = PreparedMessage(
        rendered,
        from_address=from_address,
        from_name=from_name,
        attachments=attachments,
        inline_images=inline_images,
        date=date,
        bulk=bulk,
    )
    return prepared.message_for(
        to_address=to_address,
        to_name=to_name,
        message_id=message_id,
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=unsubscribe_mailto,
    )


class PreparedIssue:
    """An issue ready to go to every subscriber: built once, a cheap copy per recipient.

    Keep one per issue for as long as the issue is being sent (e.g. cached by issue id in
    the delivery process); ``Date`` is the moment it was prepared.
    """

    def __init__(
        self,
        issue: RenderedIssue,
        *,
        from_address: str,
        from_name: str | None,
        inline_images: Sequence[InlineImage] = (),
        date: datetime | None = None,
    ) -> None:
        when = _utc(date)
        personal = RenderedMail(subject=issue.subject, html=issue.html, text=issue.text)
        self._public_stories_url = issue.public_stories_url
        self._personal, self._anonymous = (
            PreparedMessage(
                rendered,
                marker=marker,
                stories_marker=stories_marker,
                from_address=from_address,
                from_name=from_name,
                inline_images=inline_images,
                date=when,
                bulk=True,
            )
            for rendered, marker, stories_marker in (
                (personal, issue.marker, issue.stories_marker),
                (issue.anonymous, None, None),
            )
        )

    def message_for(
        self,
        *,
        to_address: str,
        to_name: str | None,
        message_id: str,
        unsubscribe_url: str | None,
        unsubscribe_mailto: str | None,
        stories_url: str | None = None,
    ) -> bytes:
        """The copy for one subscriber; without an unsubscribe URL, the anonymous body.
        ``stories_url``: an ambassador's own stories link (left out: the public stories
        page, for a subscriber who is not an ambassador)."""
        prepared = self._personal if unsubscribe_url is not None else self._anonymous
        return prepared.message_for(
            to_address=to_address,
            to_name=to_name,
            message_id=message_id,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=unsubscribe_mailto,
            stories_url=stories_url or self._public_stories_url,
        )
