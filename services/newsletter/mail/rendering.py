"""Turn a mail kind and its context into a subject, an HTML part and a text part.

Every kind has three templates in ``templates/``: ``<kind>.subject.j2`` (one line, no
escaping: it becomes a header), ``<kind>.html.j2`` (autoescaped, CSS inlined after
rendering) and ``<kind>.txt.j2`` (plain text). The HTML and text templates extend
``layout.html.j2`` / ``layout.txt.j2``, which hold the shared footer.

What each kind needs in its context (all values plain Python; datetimes may be aware,
naive UTC as MongoDB returns them, or ISO strings):

- ``confirmation``: name, confirm_url, token, expires_at
- ``subscribe_confirmation``: name (may be None), confirm_url, token, expires_at
- ``welcome``: name, certificate_number, verify_url
- ``goodbye``: name
- ``already_ambassador``: name (someone signed up with an active ambassador's address)
- ``already_subscribed``: name (may be None; someone subscribed a subscribed address)
- ``meeting_invitation``, ``meeting_updated``, ``meeting_cancelled``, ``meeting_waitlisted``,
  ``meeting_promoted``, ``meeting_reminder`` (one invitee of a meeting; see
  ``services/newsletter/meetings.py``): name, meeting {kind_label, title, description,
  starts_at, ends_at, place, online_url}, rsvp {yes, maybe, no, token} or None; and
  ``meeting_updated``: previous_starts_at, previous_ends_at; ``meeting_cancelled``: reason
  (may be None); ``meeting_waitlisted``: position.
- ``issue``: see :func:`render_issue`; use that, not ``render_mail``.

Every kind also takes ``unsubscribe_url`` (the personal link for the footer; absent or None
means no link), and ``sender_name`` and ``public_url`` which default to the settings.

A new kind (an invitation, a reminder) is three template files (and its row above);
:func:`mail_kinds` finds it by its subject template.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import css_inline
import jinja2
import nh3
from markupsafe import Markup, escape

from services.runtime.danish import long_date
from services.runtime.settings import SenderSettings, ServiceSettings

_COPENHAGEN = ZoneInfo("Europe/Copenhagen")

# What an ambassador may use in a news item body. Everything else is dropped (its text kept),
# and script/style lose their content too.
_ALLOWED_TAGS = frozenset({"p", "br", "strong", "em", "b", "i", "a", "ul", "ol", "li"})
_ALLOWED_ATTRIBUTES = {"a": frozenset({"href"})}
_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
_DROP_WITH_CONTENT = frozenset({"script", "style"})

_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    html: str
    text: str


# -- formatting helpers (also template filters) -----------------------------------------


def _as_datetime(value: datetime | date | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    # MongoDB hands back naive datetimes that are UTC by convention.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def danish_date(value: datetime | date | str) -> str:
    """``3. marts 2026``. A plain date is shown as is, a datetime in Copenhagen time."""
    if isinstance(value, str):
        value = date.fromisoformat(value) if len(value) == 10 else _as_datetime(value)
    if isinstance(value, datetime):
        value = _as_datetime(value).astimezone(_COPENHAGEN).date()
    return long_date(value)


def danish_datetime(value: datetime | date | str) -> str:
    """``3. marts 2026 kl. 14.30`` in Copenhagen time (Danish writes the time with a dot)."""
    local = _as_datetime(value).astimezone(_COPENHAGEN)
    return f"{danish_date(local.date())} kl. {local:%H.%M}"


# Spelled out by hand, as services.runtime.danish does the months.
_WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")


def danish_day(value: datetime | date | str) -> str:
    """``torsdag den 4. marts 2027``; a datetime is taken in Copenhagen time."""
    if isinstance(value, str):
        value = date.fromisoformat(value) if len(value) == 10 else _as_datetime(value)
    if isinstance(value, datetime):
        value = _as_datetime(value).astimezone(_COPENHAGEN).date()
    return f"{_WEEKDAYS[value.weekday()]} den {long_date(value)}"


def danish_span(starts: datetime | str, ends: datetime | str | None = None) -> str:
    """When a meeting is, in Copenhagen time: ``torsdag den 4. marts 2027 kl. 17.00–19.00``,
    or with both days when it ends on another (``... kl. 10.00 til fredag den 5. marts 2027
    kl. 15.00``)."""
    start = _as_datetime(starts).astimezone(_COPENHAGEN)
    text = f"{danish_day(start.date())} kl. {start:%H.%M}"
    if ends is None:
        return text
    end = _as_datetime(ends).astimezone(_COPENHAGEN)
    if end.date() == start.date():
        return f"{text}–{end:%H.%M}"
    return f"{text} til {danish_day(end.date())} kl. {end:%H.%M}"


def paragraphs(text: str | None) -> Markup:
    """Plain text as escaped HTML paragraphs: blank lines split, single newlines break."""
    blocks = [b.strip() for b in _BLANK_LINES.split((text or "").replace("\r\n", "\n"))]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(b).split("\n")))
        for b in blocks
        if b
    )


def _underline(text: str, char: str = "=") -> str:
    return char * min(len(text), 76)


# -- sanitising user HTML ---------------------------------------------------------------


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in _ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(_ALLOWED_SCHEMES),
        # A mail has no base URL a relative link could resolve against.
        url_relative="deny",
        link_rel="noopener noreferrer",
    )


def sanitise_html(text: str | None) -> Markup:
    """User HTML reduced to the small allow-list; safe to put into a template as is.

    Text without any markup (a body typed on the command line) is treated as plain
    paragraphs, so its blank lines survive instead of collapsing into one block.
    """
    text = text or ""
    if not nh3.is_html(text):
        return paragraphs(text)
    return Markup(_cleaner().clean(text).strip())


class _TextExtractor(HTMLParser):
    """Sanitised HTML (the allow-list only) to readable plain text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self._href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"p", "ul", "ol"}:
            self._out.append("\n\n")
        if tag == "br":
            self._out.append("\n")
        elif tag in {"ul", "ol"}:
            self._lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self._out.append("\n" + self._bullet())
        elif tag == "a":
            self._href = dict(attrs).get("href")
            self._link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"p", "ul", "ol"}:
            self._out.append("\n\n")
        if tag in {"ul", "ol"} and self._lists:
            self._lists.pop()
        elif tag == "a" and self._href:
            shown = "".join(self._link_text).strip()
            target = self._href.removeprefix("mailto:")
            if target != shown:
                self._out.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        data = _WHITESPACE.sub(" ", data)
        if self._href is not None:
            self._link_text.append(data)
        self._out.append(data)

    def _bullet(self) -> str:
        if not self._lists or not self._lists[-1]:
            return "- "
        counter = self._lists[-1]
        counter[0] += 1
        return f"{counter[0] - 1}. "

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self._out).split("\n"))
        return _MANY_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def plain_text(text: str | None) -> str:
    """The text-part version of user HTML: sanitised first, so script content is gone."""
    parser = _TextExtractor()
    parser.feed(str(sanitise_html(text)))
    parser.close()
    return parser.text()


def safe_url(value: str | None, schemes: Iterable[str] = ("https", "http")) -> str | None:
    """A link from user input, or None when it is empty or not a web address.

    Autoescaping keeps a URL from breaking out of its attribute, but not a ``javascript:``
    link from running; only the listed schemes pass.
    """
    if not value:
        return None
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in set(schemes) or not (parts.netloc or parts.path):
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return None
    return value


def _image_src(value: str | None, *, archive: bool) -> str | None:
    """An image address: http(s) anywhere; a relative path only in the archive.

    The archive is a web page, so images written next to it may be referred to relatively;
    a mail has no base such a path could resolve against.
    """
    url = safe_url(value)
    if url is not None or not archive or not value:
        return url
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("/"):
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return None
    return value


# -- the environment and rendering ------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("services.newsletter.mail", "templates"),
        # Only the HTML templates escape: the subject is a header and the text part is
        # shown as text, so escaping there would only put "&amp;" in front of the reader.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["danish_date"] = danish_date
    env.filters["danish_datetime"] = danish_datetime
    env.filters["danish_day"] = danish_day
    env.filters["danish_span"] = danish_span
    env.filters["paragraphs"] = paragraphs
    env.filters["sanitise"] = sanitise_html
    env.filters["underline"] = _underline
    return env


@cache
def _inliner() -> css_inline.CSSInliner:
    # keep_at_rules leaves the @media rule in a <style> tag (it cannot be inlined); nothing
    # is ever fetched from the network.
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


# The public stories page: where the digest's "send a story" link goes for a subscriber who
# is not an ambassador (an ambassador's copy carries their own link).
PUBLIC_STORIES_PATH = "/historier"


def _defaults() -> dict[str, Any]:
    # The service passes its own (see outgoing.py); these are the settings' defaults, for a
    # mail rendered without them (tests, previews of templates).
    return {
        "sender_name": SenderSettings.model_fields["mail_from_name"].default,
        "public_url": ServiceSettings.model_fields["public_url"].default,
        "unsubscribe_url": None,
        "stories_url": None,
        "archive": False,
    }


def _one_line(text: str) -> str:
    # A subject is a header: whatever the template or the data did, it stays on one line.
    return " ".join(text.split())


def _tidy_text(text: str) -> str:
    # Trailing blanks go, except in "-- ", the signature separator mail clients recognise.
    lines = (
        line if line == "-- " else line.rstrip() for line in text.replace("\r\n", "\n").split("\n")
    )
    return _MANY_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _render(kind: str, context: Mapping[str, Any]) -> RenderedMail:
    env = _environment()
    values = {**_defaults(), **context}
    subject = env.get_template(f"{kind}.subject.j2").render(values)
    html = env.get_template(f"{kind}.html.j2").render(values)
    text = env.get_template(f"{kind}.txt.j2").render(values)
    return RenderedMail(
        subject=_one_line(subject), html=_inliner().inline(html), text=_tidy_text(text)
    )


@cache
def mail_kinds() -> frozenset[str]:
    """Every kind :func:`render_mail` knows: those with a subject template, except issue."""
    names = _environment().list_templates(filter_func=lambda n: n.endswith(".subject.j2"))
    return frozenset(n.removesuffix(".subject.j2") for n in names) - {"issue"}


def render_mail(kind: str, context: Mapping[str, Any]) -> RenderedMail:
    """One transactional mail. A missing context value raises (StrictUndefined)."""
    if kind not in mail_kinds():
        raise ValueError(f"unknown mail kind {kind!r} (an issue goes through render_issue)")
    return _render(kind, context)


# -- the digest -------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    title: str
    body_html: Markup
    body_text: str
    link: str | None
    image_src: str | None
    image_alt: str
    ambassador_name: str | None


@dataclass(frozen=True)
class SectionView:
    key: str
    title: str
    entries: Sequence[Mapping[str, Any]]

    @property
    def html_template(self) -> str:
        return f"sections/{self.key}.html.j2"

    @property
    def text_template(self) -> str:
        return f"sections/{self.key}.txt.j2"


@dataclass(frozen=True)
class IssueView:
    title: str
    intro: str | None
    since: date | datetime | str
    until: date | datetime | str
    items: Sequence[ItemView]
    sections: Sequence[SectionView] = field(default_factory=tuple)


@cache
def section_keys() -> frozenset[str]:
    """The sections that have templates, i.e. that an issue may contain."""
    names = _environment().list_templates(filter_func=lambda n: n.startswith("sections/"))
    html = {n.removeprefix("sections/").removesuffix(".html.j2") for n in names}
    text = {n.removeprefix("sections/").removesuffix(".txt.j2") for n in names}
    return frozenset(html & text)


def _item_view(item: Mapping[str, Any], *, archive: bool) -> ItemView:
    body = sanitise_html(item.get("body_html"))
    # In a mail the image travels as a related part (cid:); the public archive has no such
    # part, so there only a URL will do.
    cid = item.get("image_cid")
    image_src = _image_src(item.get("image_url"), archive=archive)
    if cid and not archive:
        image_src = f"cid:{cid}"
    return ItemView(
        title=str(item["title"]),
        body_html=body,
        body_text=plain_text(body),
        link=safe_url(item.get("link")),
        image_src=image_src,
        image_alt=str(item.get("image_alt") or ""),
        ambassador_name=item.get("ambassador_name") or None,
    )


def _section_views(sections: Iterable[Mapping[str, Any]]) -> list[SectionView]:
    known = section_keys()
    views = []
    for section in sections:
        key = str(section["key"])
        if key not in known:
            raise ValueError(f"no templates for digest section {key!r} (have {sorted(known)})")
        entries = list(section.get("entries") or ())
        # An empty section would be a heading over nothing; the reader is better off without.
        if entries:
            views.append(SectionView(key=key, title=str(section["title"]), entries=entries))
    return views


def _issue_view(context: Mapping[str, Any], *, archive: bool) -> IssueView:
    period = context["period"]
    return IssueView(
        title=str(context["title"]),
        intro=context.get("intro") or None,
        since=period["since"],
        until=period["until"],
        items=[_item_view(item, archive=archive) for item in context.get("items") or ()],
        sections=_section_views(context.get("sections") or ()),
    )


@dataclass(frozen=True)
class RenderedIssue:
    """An issue rendered once, to be personalised per subscriber by string replacement.

    ``html``/``text`` hold ``marker`` where the personal unsubscribe link goes (exactly
    once each); ``anonymous`` is the same mail without that footer line, ``archive`` the
    public web version (image URLs instead of cid:, no personal data at all).
    """

    subject: str
    html: str
    text: str
    marker: str
    anonymous: RenderedMail
    archive: RenderedMail
    # Where an ambassador's own "send a story" link goes (exactly once in each part), and
    # what goes there for a subscriber who is not an ambassador.
    stories_marker: str = ""
    public_stories_url: str = ""

    def personalise(
        self, unsubscribe_url: str | None, stories_url: str | None = None
    ) -> RenderedMail:
        if unsubscribe_url is None:
            return self.anonymous
        url = safe_url(unsubscribe_url)
        stories = safe_url(stories_url or self.public_stories_url)
        if url is None or stories is None:
            raise ValueError("a personal link must be an http(s) URL without whitespace")
        html, text = self.html, self.text
        if self.stories_marker:
            html = html.replace(self.stories_marker, str(escape(stories)))
            text = text.replace(self.stories_marker, stories)
        return RenderedMail(
            subject=self.subject,
            html=html.replace(self.marker, str(escape(url))),
            text=text.replace(self.marker, url),
        )


def _new_marker(what: str = "unsubscribe") -> str:
    # Fresh per render and unguessable, so no stored text (written before the render) can
    # contain it; letters and digits only, so neither escaping nor the CSS inliner's
    # re-serialisation can alter it.
    return f"samskab{what}{secrets.token_hex(16)}"


def render_issue(issue_context: Mapping[str, Any]) -> RenderedIssue:
    """Render a digest once: for subscribers (with a marker), anonymous, and for the archive.

    ``issue_context``:
    - ``title``: str; ``intro``: str | None (plain text, blank lines make paragraphs)
    - ``period``: {"since": date, "until": date}
    - ``items``: list of {title, body_html (HTML, sanitised here; plain text also works),
      link?, image_cid? (mail: a related part with this Content-ID, see compose.InlineImage),
      image_url? (http(s); the archive also takes a relative path; the mail uses it only
      when there is no cid), image_alt?, ambassador_name?}
    - ``sections``: list of {key, title, entries: list[dict]}; ``key`` names the templates
      ``sections/<key>.html.j2`` and ``.txt.j2`` (see :func:`section_keys`); a section
      without entries is left out.
    ``sender_name``/``public_url`` may be given as for :func:`render_mail`.
    """
    extra = {k: v for k, v in issue_context.items() if k in {"sender_name", "public_url"}}
    site = str(extra.get("public_url") or _defaults()["public_url"]).rstrip("/")
    public_stories = f"{site}{PUBLIC_STORIES_PATH}"
    mail_view = _issue_view(issue_context, archive=False)
    marker, stories_marker = _new_marker(), _new_marker("stories")
    personal = _render(
        "issue",
        {**extra, "issue": mail_view, "unsubscribe_url": marker, "stories_url": stories_marker},
    )
    for placeholder in (marker, stories_marker):
        if personal.html.count(placeholder) != 1 or personal.text.count(placeholder) != 1:
            raise ValueError("each personal link's marker must appear exactly once in each part")
    archive_view = _issue_view(issue_context, archive=True)
    public = {"stories_url": public_stories}
    return RenderedIssue(
        subject=personal.subject,
        html=personal.html,
        text=personal.text,
        marker=marker,
        anonymous=_render("issue", {**extra, **public, "issue": mail_view}),
        archive=_render("issue", {**extra, **public, "issue": archive_view, "archive": True}),
        stories_marker=stories_marker,
        public_stories_url=public_stories,
    )
